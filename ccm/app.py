"""The Flask application factory. No side effects at import; no network calls, migrations or
prompts inside ``create_app``: the CLI does those before it serves."""

from __future__ import annotations

import logging

from flask import Flask, Response
from flask.json.provider import DefaultJSONProvider
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ccm.auth.api import record_key_use
from ccm.auth.usage import KeyUse
from ccm.config import Settings
from ccm.errors import CCMError, PayloadTooLarge
from ccm.http import (
    check_request,
    discard_session,
    error_response,
    finish_request,
    unavailable_response,
    unreachable,
)
from ccm.runtime import Runtime, create_runtime

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> Flask:
    """Build the API. Pass ``runtime`` to share one with an in-process worker (``ccm serve``)."""
    runtime = runtime or create_runtime(settings or Settings.from_env())
    app = Flask("ccm")
    app.extensions["ccm"] = runtime
    app.extensions["ccm.key_use"] = KeyUse(runtime.db)
    app.config["MAX_CONTENT_LENGTH"] = runtime.settings.max_request_bytes  # larger bodies get 413
    app.json = _InOrderJSON(app)
    _register_blueprints(app)
    app.before_request(check_request)
    app.after_request(finish_request)
    # Registered first so that it runs last, once the request's session is closed.
    app.teardown_request(record_key_use)
    app.teardown_request(discard_session)
    _register_error_handlers(app)
    return app


class _InOrderJSON(DefaultJSONProvider):
    sort_keys = False  # answers keep the field order of their schemas


def _register_blueprints(app: Flask) -> None:
    from ccm import meta
    from ccm.audit import api as audit
    from ccm.auth import api as api_keys
    from ccm.campaigns import api as campaigns
    from ccm.campaigns import results_api as campaign_results
    from ccm.channels import api as outbox
    from ccm.channels import providers_api as providers
    from ccm.consent import api as consent
    from ccm.conversations import api as conversations
    from ccm.engagement import api as tracking
    from ccm.engagement import unsubscribe
    from ccm.identity import api as identity
    from ccm.imports import api as imports
    from ccm.inbound import callbacks
    from ccm.ingest import api as ingest
    from ccm.message_templates import api as templates
    from ccm.messages import api as messages
    from ccm.profiles import api as profiles
    from ccm.segments import api as segments
    from ccm.suppression import api as suppressions
    from ccm.timeline import api as timeline
    from ccm.triggers import api as triggers
    from ccm.web import screens
    from ccm.webhooks import api as webhooks
    from ccm.workspaces import api as workspace

    for module in (
        meta,
        tracking,
        unsubscribe,
        timeline,
        profiles,
        consent,
        templates,
        messages,
        outbox,
        providers,
        suppressions,
        workspace,
        webhooks,
        callbacks,
        conversations,
        api_keys,
        ingest,
        identity,
        triggers,
        campaigns,
        segments,
        imports,
        campaign_results,
        audit,
    ):
        app.register_blueprint(module.bp)
    screens.register(app)


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CCMError)
    def handle_ccm_error(error: CCMError) -> Response:
        return error_response(error)

    @app.errorhandler(RequestEntityTooLarge)
    def handle_too_large(error: RequestEntityTooLarge) -> Response:
        limit = app.config["MAX_CONTENT_LENGTH"]
        return error_response(PayloadTooLarge(f"body: larger than {limit} bytes (CCM_MAX_REQUEST_BYTES)", field="body"))

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException) -> Response:
        wrapped = CCMError(error.description or error.name)
        wrapped.status, wrapped.code = error.code or 500, error.name.lower().replace(" ", "_")
        # 405 keeps its Allow header (RFC 9110 §15.5.6).
        headers = {name: value for name, value in error.get_headers() if name.lower() != "content-type"}
        return error_response(wrapped, headers)

    @app.errorhandler(DBAPIError)
    @app.errorhandler(SQLAlchemyTimeoutError)
    def handle_database_error(error: Exception) -> Response:
        return unavailable_response(error) if unreachable(error) else handle_unexpected(error)

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        wrapped = CCMError("internal error; the request changed nothing")
        wrapped.status, wrapped.code = 500, "internal_error"
        return error_response(wrapped)
