"""Identity merge: an anonymous profile folded into a known one by identify or alias, audited,
reversible, never across workspaces, losing no message in flight."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import ForeignKey, select

from ccm.auth.models import ApiKeyRole
from ccm.auth.service import create_api_key
from ccm.consent.models import ConsentRecord
from ccm.identity.service import MOVED, NOT_MOVED
from ccm.ingest.models import Account, AccountMember, ProfileAnonymousId
from ccm.models import metadata
from ccm.profiles.models import Profile
from ccm.workspaces.service import get_or_create_workspace
from tests.ingest.test_tracking_api import events, post, profile
from tests.support.api import wait_for
from tests.support.factories import publish_template, put_profile


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def anonymous_profile(runtime: Any, anonymous_id: str) -> Profile:
    with runtime.db.read_only() as session:
        found = session.scalar(
            select(Profile)
            .join(ProfileAnonymousId, ProfileAnonymousId.profile_id == Profile.id)
            .where(ProfileAnonymousId.anonymous_id == anonymous_id)
        )
        assert found is not None
        return found


def browse_anonymously(client: Any, key: str, anonymous_id: str = "dev-1") -> None:
    identify = {"anonymousId": anonymous_id, "traits": {"email": "grace@example.com", "plan": "trial"}}
    assert post(client, "/v1/identify", {**identify, "messageId": f"{anonymous_id}-1"}, key).status_code == 200
    track = {"anonymousId": anonymous_id, "event": "Viewed Pricing", "messageId": f"{anonymous_id}-2"}
    assert post(client, "/v1/track", track, key).status_code == 200


def test_identify_naming_a_known_user_merges_the_anonymous_profile_into_it(client, write_key, runtime, api):
    put_profile(api, "u-1", email=None, attributes={"plan": "team"})
    browse_anonymously(client, write_key)
    anonymous = anonymous_profile(runtime, "dev-1")

    post(client, "/v1/identify", {"userId": "u-1", "anonymousId": "dev-1", "messageId": "m-3"}, write_key)

    known = profile(runtime, "u-1")
    assert {event.profile_id for event in events(runtime)} == {known.id}
    assert anonymous_profile(runtime, "dev-1").id == known.id
    assert known.email == "grace@example.com"  # filled from the anonymous profile
    assert known.attributes == {"plan": "team"}  # the known profile's own values win
    [merge] = api.get("/v1/merges?profile=u-1").json["items"]
    assert merge["source_profile_id"] == anonymous.id and merge["target_profile_id"] == known.id
    assert merge["call"]["kind"] == "identify" and merge["call"]["message_id"] == "m-3"
    assert merge["moved"] == {"event": 2, "profile_anonymous_id": 1}
    [identify] = events(runtime, message_id="m-3")
    assert identify.notes == [f"merged profile {anonymous.id} into {known.id} (merge {merge['id']})"]


def test_an_alias_merges_the_previous_anonymous_id_into_the_user(client, write_key, runtime, api):
    put_profile(api, "u-2")
    browse_anonymously(client, write_key, "dev-2")

    response = post(client, "/v1/alias", {"previousId": "dev-2", "userId": "u-2", "messageId": "al-1"}, write_key)

    assert response.status_code == 200
    known = profile(runtime, "u-2")
    assert {event.profile_id for event in events(runtime)} == {known.id}
    assert [item["call"]["kind"] for item in api.get("/v1/merges?profile=u-2").json["items"]] == ["alias"]
    timeline = api.get("/v1/profiles/u-2/timeline").json["items"]
    assert "Viewed Pricing" in [item.get("name") for item in timeline]
    [merged] = [item for item in timeline if item["type"] == "merge"]
    assert merged["call"]["previous_id"] == "dev-2" and merged["reverted_at"] is None


def test_an_alias_to_a_new_user_names_the_anonymous_profile(client, write_key, runtime, api):
    browse_anonymously(client, write_key, "dev-3")

    post(client, "/v1/alias", {"previousId": "dev-3", "userId": "u-3", "messageId": "al-2"}, write_key)

    assert profile(runtime, "u-3").id == anonymous_profile(runtime, "dev-3").id
    assert api.get("/v1/merges").json["items"] == []


def test_two_profiles_with_their_own_user_ids_are_never_merged(client, write_key, runtime, api):
    put_profile(api, "u-4")
    put_profile(api, "u-5")

    post(client, "/v1/alias", {"previousId": "u-4", "userId": "u-5", "messageId": "al-3"}, write_key)

    assert profile(runtime, "u-4").merged_into_id is None
    assert api.get("/v1/merges").json["items"] == []
    [alias] = events(runtime, message_id="al-3")
    assert "not merged, a profile keeps one userId" in alias.notes[0]


def test_a_merge_is_reverted_from_its_record(client, write_key, runtime, api):
    put_profile(api, "u-6", email=None)
    browse_anonymously(client, write_key, "dev-6")
    anonymous = anonymous_profile(runtime, "dev-6")
    post(client, "/v1/identify", {"userId": "u-6", "anonymousId": "dev-6", "messageId": "m-6"}, write_key)
    [merge] = api.get("/v1/merges").json["items"]

    reverted = api.post(f"/v1/merges/{merge['id']}/revert")

    assert reverted.status_code == 200 and reverted.json["reverted_at"] is not None
    known, restored = profile(runtime, "u-6"), anonymous_profile(runtime, "dev-6")
    assert restored.id == anonymous.id and restored.merged_into_id is None
    assert restored.email == "grace@example.com" and known.email is None
    assert {event.message_id for event in events(runtime, profile_id=anonymous.id)} == {"dev-6-1", "dev-6-2"}
    assert {event.message_id for event in events(runtime, profile_id=known.id)} == {"m-6"}
    assert api.post(f"/v1/merges/{merge['id']}/revert").status_code == 409


def test_an_unknown_merge_is_a_404(api):
    assert api.post("/v1/merges/mrg_01JF00000000000000000000AA/revert").status_code == 404
    assert api.get("/v1/merges?profile=nobody").status_code == 404


def test_consent_given_anonymously_moves_with_the_merge(client, write_key, runtime, api):
    put_profile(api, "u-7")
    browse_anonymously(client, write_key, "dev-7")
    anonymous = anonymous_profile(runtime, "dev-7")
    with runtime.db.unit_of_work() as session:
        session.add(
            ConsentRecord(
                workspace_id=anonymous.workspace_id,
                profile_id=anonymous.id,
                channel="email",
                topic="newsletter",
                status="granted",
                source="signup_form",
            )
        )

    post(client, "/v1/identify", {"userId": "u-7", "anonymousId": "dev-7", "messageId": "m-7"}, write_key)

    consent = api.get("/v1/profiles/u-7/consent").json
    assert [(c["channel"], c["topic"], c["status"]) for c in consent["current"]] == [("email", "newsletter", "granted")]


def test_the_same_anonymous_id_in_another_workspace_is_another_person(client, write_key, runtime, api):
    with runtime.db.unit_of_work() as session:
        other, _ = get_or_create_workspace(session=session, name="other")
        _, other_key = create_api_key(session=session, workspace_id=other.id, name="web", role=ApiKeyRole.WRITE)
    browse_anonymously(client, other_key, "dev-8")
    put_profile(api, "u-8")

    post(client, "/v1/identify", {"userId": "u-8", "anonymousId": "dev-8", "messageId": "m-8"}, write_key)

    known = profile(runtime, "u-8")
    assert [event.message_id for event in events(runtime, profile_id=known.id)] == ["m-8"]
    assert api.get("/v1/merges").json["items"] == []


def test_group_calls_record_the_account_and_its_members(client, write_key, runtime):
    group = {"userId": "u-9", "groupId": "acme", "traits": {"name": "Acme", "plan": "team"}, "messageId": "g-1"}
    post(client, "/v1/group", group, write_key)
    again = {**group, "traits": {"plan": "enterprise"}, "messageId": "g-2"}
    post(client, "/v1/group", again, write_key)

    with runtime.db.read_only() as session:
        account = session.get_one(Account, (profile(runtime, "u-9").workspace_id, "acme"))
        members = session.scalars(select(AccountMember.profile_id)).all()
    assert account.traits == {"name": "Acme", "plan": "enterprise"}
    assert members == [profile(runtime, "u-9").id]


def test_a_group_call_needs_its_group_id(client, write_key, runtime):
    response = post(client, "/v1/group", {"userId": "u-9", "traits": {"name": "Acme"}}, write_key)

    assert response.status_code == 400 and response.json["field"] == "groupId"
    assert events(runtime) == []


def test_a_message_waiting_for_the_anonymous_profile_is_delivered_after_the_merge(
    client, write_key, runtime, api, smtp_server
):
    from ccm.worker import InProcessWorker

    publish_template(api)
    put_profile(api, "u-10", email=None)
    browse_anonymously(client, write_key, "dev-10")
    sent = api.post(
        "/v1/messages",
        json={"template": "welcome", "to": {"email": "grace@example.com"}, "data": {"first_name": "G", "plan": "x"}},
    )
    assert sent.status_code == 202, sent.json
    post(client, "/v1/identify", {"userId": "u-10", "anonymousId": "dev-10", "messageId": "m-10"}, write_key)

    worker = InProcessWorker(runtime, threads=2)
    worker.start()
    try:
        wait_for(lambda: smtp_server.messages, message="the email at the SMTP server")
        message = wait_for(
            lambda: (m := api.get(f"/v1/messages/{sent.json['id']}").json)["status"] == "sent" and m,
            message="the message sent",
        )
    finally:
        worker.stop()
    assert [mail.rcpt_tos for mail in smtp_server.messages] == [("grace@example.com",)]
    assert message["profile_id"] == profile(runtime, "u-10").id
    kinds = [item["type"] for item in api.get("/v1/profiles/u-10/timeline").json["items"]]
    assert "message" in kinds


def test_every_table_that_refers_to_a_profile_is_moved_by_a_merge():
    referring = {
        table.name
        for table in metadata.sorted_tables
        for column in table.columns
        if any(isinstance(key, ForeignKey) and key.column.table.name == "profile" for key in column.foreign_keys)
    }
    assert referring - NOT_MOVED == {spec.table for spec in MOVED}


def test_events_arriving_during_a_merge_all_end_on_the_surviving_profile(app, write_key, runtime, api):
    put_profile(api, "u-11")
    browse_anonymously(app.test_client(), write_key, "dev-11")

    def send(index: int) -> int:
        body = {"anonymousId": "dev-11", "event": "Scrolled", "messageId": f"s-{index}"}
        if index == 5:
            body = {"userId": "u-11", "anonymousId": "dev-11", "messageId": "merge", "type": "identify"}
        return post(app.test_client(), "/v1/identify" if index == 5 else "/v1/track", body, write_key).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(send, range(12)))

    assert statuses == [200] * 12
    known = profile(runtime, "u-11")
    assert {event.profile_id for event in events(runtime)} == {known.id}
    assert len(events(runtime)) == 14
