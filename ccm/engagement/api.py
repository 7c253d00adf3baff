"""The public tracking endpoints: they verify the token, buffer the hit and answer at once."""

from __future__ import annotations

import base64
import time

from flask import Blueprint, Response, current_app, request

from ccm.engagement.tracking import Hit, InvalidToken
from ccm.ids import new_id

bp = Blueprint("tracking", __name__, url_prefix="/t")

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store, no-cache, must-revalidate, private", "Pragma": "no-cache"}


@bp.route("/c/<token>", methods=["GET", "HEAD"])
def click(token: str) -> Response:
    """Redirect to the URL signed into the token (http and https only), after buffering the hit."""
    payload = _verified(token)
    if payload is None:
        return Response("Not found", status=404, mimetype="text/plain")
    target = payload.get("u")
    if not isinstance(target, str) or not target.lower().startswith(("http://", "https://")):
        return Response("Bad link", status=400, mimetype="text/plain")
    current_app.extensions["ccm"].hits.push(_hit("clicked", payload, target))
    return Response(status=302, headers={"Location": target, **NO_STORE})


@bp.route("/o/<token>.gif", methods=["GET", "HEAD"])
def pixel(token: str) -> Response:
    payload = _verified(token)
    if payload is None:
        return Response("Not found", status=404, mimetype="text/plain")
    current_app.extensions["ccm"].hits.push(_hit("opened", payload, None))
    return Response(PIXEL, mimetype="image/gif", headers=NO_STORE)


def _verified(token: str) -> dict | None:
    try:
        return current_app.extensions["ccm"].link_signer.verify(token)
    except InvalidToken:
        return None


def _hit(kind: str, payload: dict, url: str | None) -> Hit:
    return Hit(
        id=new_id("hit"),
        kind=kind,
        message_id=str(payload.get("m", "")),
        url=url,
        user_agent=request.headers.get("User-Agent", ""),
        ip=request.remote_addr,
        method=request.method,
        at=time.time(),
    )
