"""What every screen shares: its blueprint (with the session, CSRF and header hooks), the database,
and rendering a page.

Each area of the web app is one module under ``ccm/web/`` with one blueprint made by
:func:`screen` and listed in :mod:`ccm.web.screens`; its templates live in
``ccm/web/templates/<area>/`` and extend ``base.html``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, render_template, request
from werkzeug.wrappers import Response

from ccm.web.inputs import refuse_unstorable
from ccm.web.security import add_headers, check_unsafe_request, load_user

PREFIX = "web"


def screen(
    name: str,
    import_name: str,
    *,
    url_prefix: str | None = None,
    max_body: Callable[[], int] | None = None,
    **options: Any,
) -> Blueprint:
    """A blueprint of the web app named ``web`` or ``web_<name>``, whose requests carry the user's
    session and pass the CSRF and cross-site checks, and whose answers carry the CSP.

    ``max_body`` returns the largest request body the screen takes (an upload), instead of the
    app's ``MAX_CONTENT_LENGTH``; it is set before the CSRF check reads the form."""
    bp = Blueprint(PREFIX if name == PREFIX else f"{PREFIX}_{name}", import_name, url_prefix=url_prefix, **options)
    if max_body is not None:
        bp.before_request(lambda: _limit_body(max_body()))
    bp.before_request(load_user)
    bp.before_request(check_unsafe_request)
    bp.before_request(refuse_unstorable)
    bp.after_request(add_headers)
    return bp


def _limit_body(limit: int) -> None:
    request.max_content_length = limit


def is_screen(blueprint: str | None) -> bool:
    return blueprint is not None and (blueprint == PREFIX or blueprint.startswith(PREFIX + "_"))


def db() -> Any:
    return current_app.extensions["ccm"].db


def page(template: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any) -> Response:
    """``template`` rendered as an HTML answer; ``notices`` (messages shown at the top) default to none."""
    context.setdefault("notices", [])
    return Response(render_template(template, **context), status=status, headers=headers, mimetype="text/html")
