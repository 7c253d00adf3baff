"""``GET /v1/conversations``: each conversation says who it is assigned to, and the list filters
by assignee (a user id, or ``none`` for the unassigned); a bad assignee is a 422 naming it."""

from __future__ import annotations

import secrets

import pytest

from ccm.conversations.models import Conversation
from ccm.users.service import create_user
from ccm.workspaces.service import get_or_create_workspace


@pytest.fixture
def inbox(runtime, workspace):
    """Three conversations: one assigned to Ann, one to Bob, one to no one (ids by name)."""
    with runtime.db.unit_of_work() as session:
        users = {
            name: create_user(
                session=session, workspace_id=workspace[0], email=f"{name}@example.com", role="agent", password=None
            )[0].id
            for name in ("ann", "bob")
        }
        conversations = {}
        for name, assignee in (("ann's", users["ann"]), ("bob's", users["bob"]), ("nobody's", None)):
            row = Conversation(
                workspace_id=workspace[0],
                channel="email",
                subject=name,
                reply_token=secrets.token_hex(16),
                assignee_id=assignee,
            )
            session.add(row)
            session.flush()
            conversations[name] = row.id
    return users, conversations


def subjects(answer):
    assert answer.status_code == 200, answer.json
    return {item["subject"] for item in answer.json["items"]}


def test_each_conversation_carries_its_assignee(api, inbox):
    users, _ = inbox
    items = api.get("/v1/conversations").json["items"]
    assert {item["subject"]: item["assignee_id"] for item in items} == {
        "ann's": users["ann"],
        "bob's": users["bob"],
        "nobody's": None,
    }


def test_the_list_filters_by_assignee(api, inbox):
    users, _ = inbox
    assert subjects(api.get(f"/v1/conversations?assignee={users['ann']}")) == {"ann's"}
    assert subjects(api.get("/v1/conversations?assignee=none")) == {"nobody's"}


def test_the_assignee_filter_pages_like_the_rest(api, inbox):
    users, conversations = inbox
    first = api.get("/v1/conversations?assignee=none&limit=1").json
    assert [item["id"] for item in first["items"]] == [conversations["nobody's"]] and first["next_cursor"] is None


def test_another_workspaces_user_has_no_conversations_here(api, runtime, inbox):
    with runtime.db.unit_of_work() as session:
        other, _ = get_or_create_workspace(session=session, name="globex")
        stranger = create_user(
            session=session, workspace_id=other.id, email="eve@example.com", role="agent", password=None
        )[0].id
    assert subjects(api.get(f"/v1/conversations?assignee={stranger}")) == set()


@pytest.mark.parametrize("value", ["nobody", "None", "usr_short", "usr_" + "a" * 26, "", "ann@example.com"])
def test_a_bad_assignee_is_a_422_naming_it(api, inbox, value):
    answer = api.get("/v1/conversations", query_string={"assignee": value})
    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["details"]["field"] == "query.assignee"
