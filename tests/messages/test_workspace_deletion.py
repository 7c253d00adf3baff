"""A workspace deleted takes its messages and their attempts with it, and nobody else's: ``message``
has no foreign key to ``workspace`` (migration 0022), a trigger on ``workspace`` does what the key's
``ON DELETE CASCADE`` did."""

from __future__ import annotations

from sqlalchemy import delete, func, select

from ccm.auth.service import create_api_key
from ccm.messages.models import DeliveryAttempt, Message
from ccm.workspaces.models import Workspace
from ccm.workspaces.service import get_or_create_workspace
from tests.messages.test_send_api import finished, send
from tests.support.api import ApiClient
from tests.support.factories import publish_template, put_profile


def delivered_message(api: ApiClient) -> str:
    publish_template(api)
    put_profile(api, "u1", attributes={"first_name": "Ada", "plan": "pro"})
    accepted = send(api)
    assert accepted.status_code == 202, accepted.json
    assert finished(api, accepted.json["id"])["status"] == "delivered"
    return accepted.json["id"]


def test_deleting_a_workspace_deletes_its_messages_and_no_other(runtime, app, api, workspace, worker):
    with runtime.db.unit_of_work() as session:
        other, _ = get_or_create_workspace(session=session, name="other")
        _, token = create_api_key(session=session, workspace_id=other.id)
        other_id = other.id
    kept = delivered_message(ApiClient(app.test_client(), token))
    gone = delivered_message(api)

    with runtime.db.unit_of_work() as session:
        session.execute(delete(Workspace).where(Workspace.id == workspace[0]))

    with runtime.db.read_only() as session:
        messages = session.execute(select(Message.id, Message.workspace_id)).all()
        attempts = session.scalars(select(func.count()).select_from(DeliveryAttempt)).one()
    assert messages == [(kept, other_id)]
    assert gone != kept
    assert attempts == 1  # the deleted message's attempt went with it
