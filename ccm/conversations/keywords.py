"""SMS and chat keywords, the way carriers expect them (CTIA): STOP and its synonyms opt the
sender out on that channel before anything else is sent, START/UNSTOP opt them back in, HELP
answers with the workspace's help text. Case, surrounding spaces and trailing words or punctuation
do not matter ("Stop please", " stop. "). STOP and START are the one opt-out and its inverse
(:mod:`ccm.consent.optout`): each change is logged in the consent ledger and answered once — a
second STOP changes nothing and gets no second confirmation.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from ccm.channels.base import InboundText
from ccm.consent.models import ALL_TOPICS
from ccm.consent.optout import OptInReason, OptOutReason, opt_in, opt_out
from ccm.engagement.service import record_events
from ccm.messages.service import send_system_text
from ccm.profiles.models import Profile
from ccm.workspaces.service import workspace_policy

if TYPE_CHECKING:
    from ccm.runtime import Runtime

STOP = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "REVOKE", "OPTOUT", "CANCEL"})
START = frozenset({"START", "UNSTOP"})
HELP = frozenset({"HELP"})
_FIRST_WORD = re.compile(r"[A-Za-z]+")

STOPPED = "You are unsubscribed and will get no more messages here. Reply START to subscribe again."
STARTED = "You are subscribed again. Reply STOP to unsubscribe."


def keyword_of(body: str) -> str | None:
    """The keyword a message is, if any: its first word, in any case."""
    match = _FIRST_WORD.match(body.strip())
    word = match.group(0).upper() if match else ""
    return word if word in STOP | START | HELP else None


def handle(runtime: Runtime, session: Session, workspace_id: str, profile: Profile, text: InboundText) -> bool:
    """Act on a keyword; False when the message is not one (it is then an ordinary reply)."""
    word = keyword_of(text.body)
    if word is None:
        return False
    if word in STOP:
        _stop(runtime, session, workspace_id, profile, text, word)
    elif word in START:
        _start(runtime, session, workspace_id, profile, text, word)
    else:
        help_text = workspace_policy(session=session, workspace_id=workspace_id).help_text
        _answer(runtime, session, workspace_id, profile, text.channel, help_text)
    return True


def _stop(
    runtime: Runtime, session: Session, workspace_id: str, profile: Profile, text: InboundText, word: str
) -> None:
    if not opt_out(
        session,
        workspace_id=workspace_id,
        profile_id=profile.id,
        channel=text.channel,
        address=text.from_address,
        reason=OptOutReason.STOP,
        source="keyword",
        proof=_proof(text, word),
        detail=f"keyword {word}",
    ):
        return  # already stopped (or blocked for another reason): no second confirmation
    record_events(
        session,
        [
            {
                "workspace_id": workspace_id,
                "profile_id": profile.id,
                "channel": text.channel,
                "kind": "unsubscribed",
                "source": "keyword",
                "dedupe_key": f"keyword:{text.channel}:{text.provider_message_id}",
                "detail": {"keyword": word, "topic": ALL_TOPICS},
            }
        ],
    )
    _answer(runtime, session, workspace_id, profile, text.channel, STOPPED)


def _start(
    runtime: Runtime, session: Session, workspace_id: str, profile: Profile, text: InboundText, word: str
) -> None:
    if opt_in(
        session,
        workspace_id=workspace_id,
        profile_id=profile.id,
        channel=text.channel,
        address=text.from_address,
        reason=OptInReason.START,
        source="keyword",
        proof=_proof(text, word),
    ):
        _answer(runtime, session, workspace_id, profile, text.channel, STARTED)


def _proof(text: InboundText, word: str) -> dict[str, Any]:
    return {
        "keyword": word,
        "text": text.body[:160],
        "from": text.from_address,
        "provider_message_id": text.provider_message_id,
    }


def _answer(runtime: Runtime, session: Session, workspace_id: str, profile: Profile, channel: str, body: str) -> None:
    """Send the one confirmation, even to an address just suppressed (a STOP is acknowledged)."""
    send_system_text(
        session=session, runtime=runtime, workspace_id=workspace_id, profile_id=profile.id, channel=channel, text=body
    )
