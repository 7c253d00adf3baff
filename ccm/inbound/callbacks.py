"""The endpoints providers call back: status reports and inbound messages, one URL pair per
provider account (``{CCM_PUBLIC_URL}/hooks/{account id}/status`` and ``…/inbound``).

Part of the inbound layer (:mod:`ccm.inbound`), above the domains: a report goes to
:mod:`ccm.engagement.status`, an inbound text to :mod:`ccm.conversations.service`.

No API key: each request must carry the provider's own signature, checked in constant time by the
provider class; anything else is a 401 and changes nothing. Reports are deduplicated by the
provider's event id, so the retries every provider makes are harmless.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from flask import Blueprint, Response, current_app, jsonify, request

from ccm.channels.base import InboundRequest, WebhookRejected
from ccm.channels.models import ProviderAccount
from ccm.conversations.service import receive_texts
from ccm.engagement.status import ReportTooEarly, apply_reports
from ccm.validation import check_input

bp = Blueprint("hooks", __name__, url_prefix="/hooks")


@bp.post("/<account_id>/<kind>")
def callback(account_id: str, kind: str) -> Response | tuple[Response, int]:
    runtime = current_app.extensions["ccm"]
    if kind not in ("status", "inbound"):
        return jsonify(error={"code": "not_found", "message": "no such callback"}), 404
    with runtime.db.unit_of_work() as session:
        account = session.get(ProviderAccount, account_id)
        configured = runtime.providers.instance(account) if account is not None and account.enabled else None
        if configured is None or kind not in configured.spec.callbacks:
            return jsonify(error={"code": "not_found", "message": "no such callback"}), 404
        provider = configured.provider
        inbound = _inbound_request(runtime.settings.public_url)
        try:
            provider.verify_webhook(inbound)
        except WebhookRejected as exc:
            session.rollback()
            return jsonify(error={"code": "unauthorized", "message": f"callback refused: {exc}"}), 401
        check_input(inbound.form, "form")
        if kind == "status":
            try:
                apply_reports(session, account, provider.parse_status_callback(inbound), chat_key=provider.handle_key)
            except ReportTooEarly as exc:
                session.rollback()  # nothing recorded: the provider's retry will find the message
                return _retry_later(f"message {exc} not recorded yet; retry")
        else:
            receive_texts(runtime, session, account, provider.parse_inbound(inbound))
    answer = configured.spec.callback_answer
    return Response(answer[0], mimetype=answer[1]) if answer else jsonify(ok=True)


def _retry_later(message: str) -> tuple[Response, int]:
    response = jsonify(error={"code": "retry", "message": message})
    response.headers["Retry-After"] = "5"
    return response, 503


def _inbound_request(public_url: str) -> InboundRequest:
    """The request as the provider sent it: exact body bytes (signatures cover them), the form
    parsed from those same bytes, and the public URL the provider was given."""
    path = request.full_path[:-1] if request.full_path.endswith("?") else request.full_path
    body = request.get_data(cache=True)
    form = {}
    if request.mimetype == "application/x-www-form-urlencoded":
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return InboundRequest(
        method=request.method,
        url=request.url,
        public_url=public_url + path,
        headers={name.lower(): value for name, value in request.headers.items()},
        body=body,
        form=form,
    )
