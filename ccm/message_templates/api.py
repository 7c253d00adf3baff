from __future__ import annotations

from flask import Blueprint, current_app, request

from ccm.access import Permission
from ccm.auth.api import current_actor, current_workspace_id, require_api_key
from ccm.http import db_session, endpoint, permissions
from ccm.message_templates import service, snippets
from ccm.message_templates.preview import preview_template
from ccm.message_templates.sandbox import TemplateSandbox
from ccm.message_templates.schemas import (
    PreviewIn,
    PreviewOut,
    PublishOut,
    SnippetIn,
    SnippetList,
    SnippetName,
    SnippetOut,
    TemplateIn,
    TemplateKey,
    TemplateList,
    TemplateOut,
    TemplatePatch,
    VersionOut,
)
from ccm.validation import Version

bp = Blueprint("templates", __name__, url_prefix="/v1")
bp.before_request(require_api_key)
permissions(bp, writes=Permission.TEMPLATES)


def _sandbox() -> TemplateSandbox:
    return current_app.extensions["ccm"].sandbox


@endpoint(
    bp,
    "/templates",
    method="POST",
    body=TemplateIn,
    responses={201: TemplateOut},
    errors=(409,),
    summary="Create a template (its draft is checked: a syntax error or forbidden construct is a 422)",
)
def create_template(body: TemplateIn) -> tuple[TemplateOut, int]:
    template = service.create_template(
        session=db_session(), sandbox=_sandbox(), workspace_id=current_workspace_id(), data=body
    )
    return TemplateOut.model_validate(template), 201


@endpoint(bp, "/templates", method="GET", responses={200: TemplateList}, summary="List templates")
def list_templates() -> TemplateList:
    items = service.list_templates(session=db_session(), workspace_id=current_workspace_id())
    return TemplateList(items=[TemplateOut.model_validate(t) for t in items])


@endpoint(bp, "/templates/<key>", method="GET", responses={200: TemplateOut}, summary="Read a template's draft")
def get_template(key: TemplateKey) -> TemplateOut:
    template = service.get_template(session=db_session(), workspace_id=current_workspace_id(), key=key)
    return TemplateOut.model_validate(template)


@endpoint(
    bp,
    "/templates/<key>",
    method="PATCH",
    body=TemplatePatch,
    responses={200: TemplateOut},
    summary="Edit a template's draft",
)
def patch_template(key: TemplateKey, body: TemplatePatch) -> TemplateOut:
    template = service.update_draft(
        session=db_session(), sandbox=_sandbox(), workspace_id=current_workspace_id(), key=key, data=body
    )
    return TemplateOut.model_validate(template)


@endpoint(
    bp,
    "/templates/<key>/publish",
    method="POST",
    responses={200: PublishOut, 201: PublishOut},
    errors=(409,),
    summary="Publish the draft as the next immutable version (409 when it uses undeclared variables or missing "
    "snippets)",
)
def publish_template(key: TemplateKey) -> tuple[PublishOut, int]:
    version, created = service.publish(
        session=db_session(), sandbox=_sandbox(), workspace_id=current_workspace_id(), key=key
    )
    if created:
        _record(key, version)
    return PublishOut(version=version, created=created), 201 if created else 200


@endpoint(
    bp,
    "/templates/<key>/versions/<int:version>/rollback",
    method="POST",
    responses={200: PublishOut, 201: PublishOut},
    summary="Publish an earlier version's content (with the layouts and partials frozen in it) as the next "
    "version; the draft becomes that content",
)
def rollback_template(key: TemplateKey, version: Version) -> tuple[PublishOut, int]:
    number, created = service.rollback(
        session=db_session(), workspace_id=current_workspace_id(), key=key, version=version
    )
    if created:
        _record(key, number, rolled_back_from=version)
    return PublishOut(version=number, created=created), 201 if created else 200


def _record(key: str, version: int, *, rolled_back_from: int | None = None) -> None:
    service.record_publish(
        session=db_session(),
        workspace_id=current_workspace_id(),
        key=key,
        version=version,
        actor=current_actor(),
        ip=request.remote_addr,
        rolled_back_from=rolled_back_from,
    )


@endpoint(
    bp,
    "/templates/<key>/versions/<int:version>",
    method="GET",
    responses={200: VersionOut},
    summary="Read a published version",
)
def get_version(key: TemplateKey, version: Version) -> VersionOut:
    row = service.get_version(session=db_session(), workspace_id=current_workspace_id(), key=key, version=version)
    return VersionOut.model_validate(row)


@endpoint(
    bp,
    "/templates/<key>/preview",
    method="POST",
    body=PreviewIn,
    responses={200: PreviewOut},
    errors=(409,),
    summary="Render a version or the draft with a stored profile or sample data; lists problems found",
)
def preview(key: TemplateKey, body: PreviewIn) -> PreviewOut:
    return preview_template(
        session=db_session(),
        sandbox=_sandbox(),
        workspace_id=current_workspace_id(),
        key=key,
        request=body,
        public_url=current_app.extensions["ccm"].settings.public_url,
    )


@endpoint(
    bp,
    "/snippets/<path:name>",
    method="PUT",
    body=SnippetIn,
    responses={200: SnippetOut, 201: SnippetOut},
    summary="Create or replace a layout or partial (e.g. layouts/base.html)",
)
def put_snippet(name: SnippetName, body: SnippetIn) -> tuple[SnippetOut, int]:
    snippet, created = snippets.put_snippet(
        session=db_session(), sandbox=_sandbox(), workspace_id=current_workspace_id(), name=name, source=body.source
    )
    return SnippetOut.model_validate(snippet), 201 if created else 200


@endpoint(bp, "/snippets/<path:name>", method="GET", responses={200: SnippetOut}, summary="Read a layout or partial")
def get_snippet(name: SnippetName) -> SnippetOut:
    return SnippetOut.model_validate(
        snippets.get_snippet(session=db_session(), workspace_id=current_workspace_id(), name=name)
    )


@endpoint(bp, "/snippets", method="GET", responses={200: SnippetList}, summary="List layouts and partials")
def list_snippets() -> SnippetList:
    items = snippets.list_snippets(session=db_session(), workspace_id=current_workspace_id())
    return SnippetList(items=[SnippetOut.model_validate(s) for s in items])


@endpoint(bp, "/snippets/<path:name>", method="DELETE", responses={204: None}, summary="Delete a layout or partial")
def delete_snippet(name: SnippetName) -> tuple[None, int]:
    snippets.delete_snippet(session=db_session(), workspace_id=current_workspace_id(), name=name)
    return None, 204
