"""Unsubscribing: the RFC 8058 one-click endpoint, the confirmation page behind the same link,
and the preference page where a person picks topics and channels.

The links carry a token signed for this purpose only (``ccm.tokens.UNSUBSCRIBE``), valid for
400 days and across key rotations. ``GET`` never changes anything (mail scanners follow links);
``POST`` does, and doing it twice changes nothing more. A decision goes through the one opt-out
(:mod:`ccm.consent.optout`): a consent record, honoured by the very next send. The handlers read
the request; the functions below them take plain values.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request
from jinja2 import Environment
from sqlalchemy.orm import Session

from ccm.consent.models import ALL_TOPICS
from ccm.consent.optout import OptInReason, OptOutReason, opt_in, opt_out
from ccm.consent.service import allows
from ccm.engagement.service import record_events
from ccm.profiles.models import Profile
from ccm.tokens import UNSUBSCRIBE, UNSUBSCRIBE_MAX_AGE, InvalidToken
from ccm.workspaces.service import workspace_policy

bp = Blueprint("unsubscribe", __name__, url_prefix="/u")
_pages = Environment(autoescape=True)

CONFIRM = _pages.from_string("""<!doctype html><html><head><meta charset="utf-8"><title>Unsubscribe</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 3rem auto">
{% if done %}<h1>You are unsubscribed</h1><p>You will not get {{ what }} any more.</p>
{% else %}<h1>Unsubscribe?</h1><p>Stop receiving {{ what }}.</p>
<form method="post"><button type="submit">Unsubscribe</button></form>{% endif %}
<p><a href="{{ preferences }}">Choose what you receive instead</a></p></body></html>""")

PREFERENCES = _pages.from_string("""<!doctype html><html><head><meta charset="utf-8"><title>Preferences</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 3rem auto">
<h1>What would you like to receive?</h1>{% if saved %}<p><strong>Saved.</strong></p>{% endif %}
<form method="post">{% for row in rows %}<fieldset><legend>{{ row.label }}</legend>
{% for channel, on in row.channels %}<label><input type="checkbox" name="{{ row.topic }}:{{ channel }}"
{% if on %}checked{% endif %}> {{ channel }}</label> {% endfor %}</fieldset>{% endfor %}
<input type="hidden" name="submitted" value="1"><button type="submit">Save</button></form></body></html>""")

CHANNELS = ("email", "sms", "chat")


@bp.get("/<token>")
def confirm_page(token: str) -> Response:
    """What the link shows in a browser: a question, never a change."""
    payload = _verify(token)
    return _html(CONFIRM.render(done=False, what=_what(payload), preferences=f"{request.path}/preferences"))


@bp.post("/<token>")
def unsubscribe(token: str) -> Response:
    """RFC 8058 one-click (``List-Unsubscribe=One-Click``) and the confirmation form: 200, never a redirect."""
    runtime = current_app.extensions["ccm"]
    payload = _verify(token)
    source = "one_click" if request.form.get("List-Unsubscribe") else "unsubscribe_link"
    with runtime.db.unit_of_work() as session:
        revoke(session, payload, source=source, ip=request.remote_addr, user_agent=request.headers.get("User-Agent"))
    return _html(CONFIRM.render(done=True, what=_what(payload), preferences=f"{request.path}/preferences"))


@bp.route("/<token>/preferences", methods=["GET", "POST"])
def preferences(token: str) -> Response:
    runtime = current_app.extensions["ccm"]
    payload = _verify(token)
    with runtime.db.unit_of_work() as session:
        profile = session.get(Profile, payload.get("p") or "")
        if profile is None or profile.workspace_id != payload.get("w"):
            return _html("<p>Nothing to choose: we do not hold any data about you.</p>")
        policy = workspace_policy(session=session, workspace_id=profile.workspace_id)
        topics = [(ALL_TOPICS, "Every message")] + [(key, t.description or key) for key, t in policy.topics.items()]
        if request.method == "POST":
            visitor = {"ip": request.remote_addr, "user_agent": request.headers.get("User-Agent")}
            _save(session, profile, policy, topics, wanted=set(request.form), **visitor)
        rows = [
            {
                "topic": topic,
                "label": label,
                "channels": [
                    (
                        c,
                        allows(
                            session=session,
                            profile_id=profile.id,
                            channel=c,
                            topic=None if topic == ALL_TOPICS else topic,
                            policy=policy,
                        ),
                    )
                    for c in CHANNELS
                ],
            }
            for topic, label in topics
        ]
    return _html(PREFERENCES.render(rows=rows, saved=request.method == "POST"))


def revoke(session: Session, payload: dict[str, Any], *, source: str, ip: str | None, user_agent: str | None) -> bool:
    """Record the opt-out the token stands for; False when it was already in effect."""
    profile = session.get(Profile, payload.get("p") or "")
    if profile is None or profile.workspace_id != payload.get("w"):
        return False  # erased, or never ours: nothing to stop
    channel, topic = payload.get("c") or "email", payload.get("t") or ALL_TOPICS
    if not opt_out(
        session,
        workspace_id=profile.workspace_id,
        profile_id=profile.id,
        channel=channel,
        address=None,
        reason=OptOutReason.UNSUBSCRIBE,
        source=source,
        topic=topic,
        proof={"message_id": payload.get("m")},
        ip=ip,
        user_agent=user_agent,
    ):
        return False
    record_events(
        session,
        [
            {
                "workspace_id": profile.workspace_id,
                "profile_id": profile.id,
                "message_id": payload.get("m"),
                "channel": channel,
                "kind": "unsubscribed",
                "source": source,
                "detail": {"topic": topic},
            }
        ],
    )
    return True


def _save(
    session: Session,
    profile: Profile,
    policy: Any,
    topics: list[tuple[str, str]],
    *,
    wanted: set[str],
    ip: str | None,
    user_agent: str | None,
) -> None:
    """Record the choices of the preference page that differ from the current consent."""
    for topic, _ in topics:
        for channel in CHANNELS:
            on = f"{topic}:{channel}" in wanted
            current = allows(
                session=session,
                profile_id=profile.id,
                channel=channel,
                topic=None if topic == ALL_TOPICS else topic,
                policy=policy,
            )
            if on == current:
                continue
            decision: dict[str, Any] = {
                "workspace_id": profile.workspace_id,
                "profile_id": profile.id,
                "channel": channel,
                "topic": topic,
                "source": "preference_page",
                "ip": ip,
                "user_agent": user_agent,
            }
            if on:
                opt_in(session, reason=OptInReason.RESUBSCRIBE, **decision)
            else:
                opt_out(session, address=None, reason=OptOutReason.UNSUBSCRIBE, **decision)


def _verify(token: str) -> dict[str, Any]:
    from werkzeug.exceptions import NotFound

    try:
        return current_app.extensions["ccm"].signer.verify(UNSUBSCRIBE, token, max_age=UNSUBSCRIBE_MAX_AGE)
    except InvalidToken:
        raise NotFound("This link is not valid.") from None


def _what(payload: dict[str, Any]) -> str:
    topic = payload.get("t")
    return f"{'“' + topic + '” ' if topic else ''}messages by {payload.get('c') or 'email'}"


def _html(body: str) -> Response:
    return Response(body, mimetype="text/html", headers={"Cache-Control": "no-store"})
