"""The inbox: conversations by status (and "mine"), one thread with the person's replies arriving live (htmx
polls the thread), its status and assignee, and the agent's answer, sent by the function the follow-up API
uses (:func:`ccm.conversations.follow_up.send_in_conversation`) under the form's idempotency key."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, redirect, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from ccm.access import Permission, allows
from ccm.conversations.follow_up import send_in_conversation
from ccm.conversations.inbox import assign, assignable, get_conversation, list_conversations, set_status, thread
from ccm.conversations.models import Conversation, ConversationStatus
from ccm.errors import CCMError, ValidationFailed
from ccm.idempotency.service import fingerprint, run_idempotent
from ccm.messages.preview import check_send
from ccm.profiles.models import Profile
from ccm.web import customer
from ccm.web.pages import db, page, screen
from ccm.web.security import requires

bp = screen("conversations", __name__, url_prefix="/conversations")

FILTERS = ("open", "pending", "resolved", "all")
PAGE_SIZE = 25
POLL_SECONDS = 3


@bp.get("/")
@requires(Permission.VIEW)
def index() -> Response:
    shown, mine = request.args.get("status", "open"), request.args.get("mine") == "1"
    choice: dict[str, Any] = {"shown": shown, "mine": mine, "filters": FILTERS}
    try:
        if shown not in FILTERS:
            raise ValidationFailed(f"status: must be one of {', '.join(FILTERS)}", field="status")
        paging = customer.page_query(request.args.get("cursor"), PAGE_SIZE)
        with db().read_only() as session:
            rows, cursor = list_conversations(
                session=session,
                workspace_id=g.user.workspace_id,
                page=paging,
                status=None if shown == "all" else shown,
                assignee_id=g.user.user_id if mine else None,
            )
            people = _people(session, [row.profile_id for row in rows if row.profile_id])
            agents = {user.id: user.email for user in assignable(session=session, workspace_id=g.user.workspace_id)}
    except CCMError as exc:
        empty: dict[str, Any] = {"rows": [], "people": {}, "agents": {}, "cursor": None}
        return page("conversations/index.html", exc.status, notices=[exc.message], **choice, **empty)
    found: dict[str, Any] = {"rows": rows, "people": people, "agents": agents, "cursor": cursor}
    return page("conversations/index.html", **choice, **found)


@bp.get("/<conversation_id>")
@requires(Permission.VIEW)
def show(conversation_id: str) -> Response:
    return _thread_page(conversation_id, request.args.get("text", ""))


@bp.get("/<conversation_id>/thread")
@requires(Permission.VIEW)
def entries(conversation_id: str) -> Response:
    """The thread alone: what the page polls for, so replies show as they arrive."""
    try:
        with db().read_only() as session:
            conversation = _conversation(session, conversation_id)
            found = thread(session=session, conversation=conversation)
    except CCMError as exc:
        return page("conversations/missing.html", exc.status, notices=[exc.message])
    return page("conversations/_thread.html", conversation=conversation, entries=found, poll=POLL_SECONDS)


@bp.post("/<conversation_id>/status")
@requires(Permission.CONVERSATIONS)
def change_status(conversation_id: str) -> Response:
    try:
        with db().unit_of_work() as session:
            conversation = _conversation(session, conversation_id)
            set_status(session=session, conversation=conversation, status=request.form.get("status", ""))
    except CCMError as exc:
        return _thread_page(conversation_id, "", status=exc.status, notices=[exc.message])
    return redirect(url_for("web_conversations.show", conversation_id=conversation_id), 303)


@bp.post("/<conversation_id>/assignee")
@requires(Permission.CONVERSATIONS)
def change_assignee(conversation_id: str) -> Response:
    try:
        with db().unit_of_work() as session:
            conversation = _conversation(session, conversation_id)
            assign(session=session, conversation=conversation, assignee_id=request.form.get("assignee") or None)
    except CCMError as exc:
        return _thread_page(conversation_id, "", status=exc.status, notices=[exc.message])
    return redirect(url_for("web_conversations.show", conversation_id=conversation_id), 303)


@bp.post("/<conversation_id>/messages")
@requires(Permission.CONVERSATIONS)
def answer(conversation_id: str) -> Response:
    form, runtime = request.form, current_app.extensions["ccm"]
    try:
        with db().unit_of_work() as session:
            conversation = _conversation(session, conversation_id)
            text = _answer_text(form.get("text", ""))
            run_idempotent(
                session=session,
                workspace_id=g.user.workspace_id,
                key=customer.idempotency_key(g.user.user_id, form.get("idempotency_key", "")),
                request_hash=fingerprint("POST", request.path, text.encode()),
                ttl=runtime.settings.idempotency_ttl,
                work=lambda: (
                    {
                        "id": send_in_conversation(
                            session=session,
                            runtime=runtime,
                            conversation=conversation,
                            template=None,
                            data={},
                            text=text,
                        )
                    },
                    202,
                ),
            )
    except CCMError as exc:
        return _thread_page(conversation_id, form.get("text", ""), status=exc.status, notices=[exc.message])
    return redirect(url_for("web_conversations.show", conversation_id=conversation_id), 303)


def _thread_page(conversation_id: str, text: str, *, status: int = 200, notices: list[str] | None = None) -> Response:
    runtime = current_app.extensions["ccm"]
    try:
        with db().read_only() as session:
            conversation = _conversation(session, conversation_id)
            found = thread(session=session, conversation=conversation)
            person = _people(session, [conversation.profile_id] if conversation.profile_id else [])
            agents = assignable(session=session, workspace_id=conversation.workspace_id)
            checked = (
                check_send(
                    session=session,
                    runtime=runtime,
                    workspace_id=conversation.workspace_id,
                    profile_id=conversation.profile_id,
                    template=None,
                    channel=conversation.channel,
                    conversation_id=conversation.id,
                )
                if conversation.profile_id
                else None
            )
    except CCMError as exc:
        return page("conversations/missing.html", 404 if exc.status == 404 else exc.status, notices=[exc.message])
    return page(
        "conversations/show.html",
        status,
        notices=notices or [],
        conversation=conversation,
        person=person.get(conversation.profile_id or ""),
        entries=found,
        poll=POLL_SECONDS,
        statuses=list(ConversationStatus),
        agents=[(user.id, user.email) for user in agents],
        check=checked,
        text=text,
        key=customer.new_key(),
        can_write=allows(g.user.role, Permission.CONVERSATIONS),
    )


def _conversation(session: Any, conversation_id: str) -> Conversation:
    return get_conversation(session=session, workspace_id=g.user.workspace_id, conversation_id=conversation_id)


def _people(session: Any, profile_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Search-result rows of the conversations' people, by profile id, in one read."""
    if not profile_ids:
        return {}
    profiles = session.scalars(select(Profile).where(Profile.id.in_(set(profile_ids))))
    return {profile.id: customer.summary(profile) for profile in profiles}


def _answer_text(text: str) -> str:
    if not text.strip():
        raise ValidationFailed("text: write the answer first", field="text")
    if len(text) > 10000:
        raise ValidationFailed("text: at most 10000 characters", field="text")
    return text
