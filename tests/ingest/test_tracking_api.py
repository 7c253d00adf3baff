"""The Segment-spec tracking endpoints, as the official clients call them."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from ccm.ingest.models import Event, EventSeen
from ccm.profiles.models import Profile


def post(app_client: Any, path: str, body: Any, key: str | None, *, gzipped: bool = False, **headers: str) -> Any:
    raw = json.dumps(body).encode()
    if gzipped:
        raw, headers = gzip.compress(raw), {**headers, "Content-Encoding": "gzip"}
    if key is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    return app_client.post(path, data=raw, headers={"Content-Type": "application/json", **headers})


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def events(runtime: Any, **where: Any) -> list[Event]:
    with runtime.db.read_only() as session:
        statement = select(Event).order_by(Event.occurred_at)
        for name, value in where.items():
            statement = statement.where(getattr(Event, name) == value)
        return list(session.scalars(statement))


def profile(runtime: Any, external_id: str) -> Profile | None:
    with runtime.db.read_only() as session:
        return session.scalar(select(Profile).where(Profile.external_id == external_id))


def test_identify_creates_the_profile_with_reserved_traits_on_its_fields(client, write_key, runtime, api):
    answer = post(
        client,
        "/v1/identify",
        {
            "userId": "u-1",
            "traits": {"email": "Ada@Example.com", "firstName": "Ada", "plan": "pro", "timezone": "Europe/Paris"},
            "messageId": "m-1",
        },
        write_key,
    )

    assert answer.status_code == 200, answer.json
    assert answer.json == {"success": True, "stored": 1, "duplicates": 0}
    shown = api.get("/v1/profiles/u-1").json
    assert shown["email"] == "Ada@example.com"
    assert shown["timezone"] == "Europe/Paris"
    assert shown["attributes"] == {"first_name": "Ada", "plan": "pro"}


def test_traits_may_come_in_the_context_as_some_clients_send_them(client, write_key, runtime):
    post(client, "/v1/identify", {"userId": "u-2", "context": {"traits": {"email": "bo@example.com"}}}, write_key)

    assert profile(runtime, "u-2").email == "bo@example.com"


def test_an_invalid_trait_is_noted_on_the_event_and_not_applied(client, write_key, runtime):
    answer = post(
        client, "/v1/identify", {"userId": "u-3", "traits": {"email": "not an email", "phone": "12"}}, write_key
    )

    assert answer.status_code == 200
    assert profile(runtime, "u-3").email is None
    (event,) = events(runtime, kind="identify")
    assert [note.split(":")[0] for note in event.notes] == ["traits.email", "traits.phone"]


def test_a_retried_event_is_stored_once(client, write_key, runtime):
    body = {"userId": "u-4", "event": "Order Completed", "properties": {"total": 30}, "messageId": "retry-me"}

    first = post(client, "/v1/track", body, write_key)
    again = post(client, "/v1/track", body, write_key)

    assert (first.json["stored"], again.json["stored"], again.json["duplicates"]) == (1, 0, 1)
    (event,) = events(runtime, kind="track")
    assert (event.name, event.properties) == ("Order Completed", {"total": 30})


def test_a_batch_merges_its_context_and_corrects_the_senders_clock(client, write_key, runtime):
    # The sender's clock runs 1 hour fast: it stamped the event at 11:00 and sent it at 11:00:05.
    body = {
        "batch": [
            {
                "type": "track",
                "userId": "u-5",
                "event": "Viewed",
                "messageId": "b-1",
                "originalTimestamp": "2026-12-02T11:00:00Z",
            },
            {
                "type": "page",
                "userId": "u-5",
                "name": "Pricing",
                "messageId": "b-2",
                "context": {"page": {"path": "/p"}},
            },
        ],
        "context": {"library": {"name": "analytics-python", "version": "2.3.4"}},
        "sentAt": "2026-12-02T11:00:05Z",
    }

    answer = post(client, "/v1/batch", body, write_key, gzipped=True)

    assert answer.status_code == 200, answer.json
    viewed, page = sorted(events(runtime), key=lambda event: event.message_id)
    assert viewed.occurred_at == viewed.received_at - dt.timedelta(seconds=5)
    assert viewed.context["library"]["name"] == "analytics-python"
    assert page.context == {"library": {"name": "analytics-python", "version": "2.3.4"}, "page": {"path": "/p"}}
    assert page.name == "Pricing"


def test_import_is_an_alias_of_batch_and_the_body_may_carry_the_write_key(client, write_key, runtime):
    body = {"writeKey": write_key, "batch": [{"type": "track", "anonymousId": "a-1", "event": "Opened App"}]}

    assert post(client, "/v1/import", body, None).status_code == 200
    assert len(events(runtime, name="Opened App")) == 1


def test_identify_after_anonymous_activity_keeps_one_profile(client, write_key, runtime):
    post(client, "/v1/track", {"anonymousId": "dev-1", "event": "Added to Cart", "messageId": "a1"}, write_key)
    post(client, "/v1/identify", {"anonymousId": "dev-1", "userId": "u-6", "messageId": "a2"}, write_key)
    post(client, "/v1/track", {"anonymousId": "dev-1", "event": "Checkout", "messageId": "a3"}, write_key)

    known = profile(runtime, "u-6")
    assert known is not None
    assert {event.profile_id for event in events(runtime)} == {known.id}


def test_a_write_key_cannot_read_profiles_or_send_messages(client, write_key):
    headers = {"Authorization": f"Bearer {write_key}"}

    assert client.get("/v1/profiles", headers=headers).status_code == 403
    assert client.post("/v1/messages", json={}, headers=headers).status_code == 403


def test_a_revoked_or_missing_key_is_refused_in_the_clients_error_shape(client, api, write_key, runtime):
    key_id = next(key["id"] for key in api.get("/v1/api-keys").json["items"] if key["role"] == "write")
    api.delete(f"/v1/api-keys/{key_id}")

    revoked = post(client, "/v1/track", {"userId": "u", "event": "e"}, write_key)
    missing = post(client, "/v1/track", {"userId": "u", "event": "e"}, None)

    assert revoked.status_code == missing.status_code == 401
    assert set(revoked.json) == {"code", "message", "field"}
    assert events(runtime) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"batch": [{"type": "track", "userId": "u", "event": "ok"}, {"type": "fly", "userId": "u"}]}, "batch.1.type"),
        ({"batch": [{"type": "track", "event": "no one"}]}, "batch.0.userId"),
        ({"batch": [{"type": "track", "userId": "u", "event": "x", "messageId": "m" * 101}]}, "batch.0.messageId"),
        ({"batch": [{"type": "track", "userId": "u", "event": "x", "timestamp": "yesterday"}]}, "batch.0.timestamp"),
        ({"batch": [{"type": "track", "userId": "u", "event": "x", "properties": [1]}]}, "batch.0.properties"),
        (
            {"batch": [{"type": "track", "userId": "u", "event": "x" * 20, "properties": {"p": "x" * 33_000}}]},
            "batch.0.",
        ),
        ({"batch": [{"type": "track", "userId": "u", "event": "x"}] * 2501}, "batch"),
        ({"batch": "no"}, "batch"),
    ],
    ids=["type", "no-ids", "message-id", "timestamp", "properties", "event-size", "batch-count", "batch-shape"],
)
def test_a_request_that_breaks_the_spec_is_a_400_naming_the_field_and_stores_nothing(
    client, write_key, runtime, body, field
):
    answer = post(client, "/v1/batch", body, write_key)

    assert answer.status_code == 400, answer.json
    assert answer.json["field"] == field
    assert events(runtime) == []
    with runtime.db.read_only() as session:
        assert session.scalar(select(func.count()).select_from(EventSeen)) == 0


@pytest.mark.parametrize(
    ("raw", "headers", "field"),
    [
        (b"\x1f\x8b\x08not gzip", {"Content-Encoding": "gzip"}, "body"),
        (gzip.compress(b"{" + b" " * 600_000 + b"}"), {"Content-Encoding": "gzip"}, "body"),
        (b'{"batch": [', {}, "body"),
        (b"[1, 2]", {}, "body"),
        (b"{}", {"Content-Encoding": "br"}, "Content-Encoding"),
    ],
    ids=["broken-gzip", "gzip-bomb", "bad-json", "not-an-object", "unknown-encoding"],
)
def test_an_unreadable_body_is_a_400(client, write_key, raw, headers, field):
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    answer = client.post("/v1/batch", data=raw, headers={"Authorization": auth, **headers})

    assert answer.status_code == 400
    assert answer.json["field"] == field


def test_the_official_python_client_delivers_identify_and_track(live_server, write_key, runtime):
    from segment.analytics import Client

    failures: list[Any] = []
    segment = Client(write_key, host=live_server, gzip=True, sync_mode=True, on_error=lambda e, b: failures.append(e))
    segment.identify("u-7", {"email": "grace@example.com", "firstName": "Grace"})
    segment.track("u-7", "Signed Up", {"plan": "team"})
    segment.flush()

    assert failures == []
    assert profile(runtime, "u-7").attributes == {"first_name": "Grace"}
    (signed_up,) = events(runtime, name="Signed Up")
    assert signed_up.properties == {"plan": "team"}
    assert signed_up.context["library"]["name"] == "analytics-python"


def test_every_call_shows_on_the_profiles_timeline(client, write_key, api):
    post(
        client,
        "/v1/identify",
        {"userId": "u-8", "traits": {"email": "nope"}, "timestamp": "2026-12-01T10:00:00Z"},
        write_key,
    )
    post(
        client,
        "/v1/track",
        {"userId": "u-8", "event": "Order Completed", "properties": {"total": 30}, "timestamp": "2026-12-01T11:00:00Z"},
        write_key,
    )

    items = [item for item in api.get("/v1/profiles/u-8/timeline").json["items"] if item["type"] == "activity"]

    assert [(item["kind"], item["name"]) for item in items] == [("track", "Order Completed"), ("identify", None)]
    assert items[0]["properties"] == {"total": 30}
    assert items[0]["at"].startswith("2026-12-01T11:00:00")
    assert items[1]["notes"][0].startswith("traits.email: not applied")


@pytest.mark.settings(ingest_max_in_flight=1, ingest_queue_wait=0.05)
def test_an_overloaded_process_answers_429_with_retry_after_and_stores_nothing(client, write_key, app, runtime):
    gate = app.extensions["ccm.ingest_gate"]
    assert gate.acquire(timeout=1)  # the one slot, taken as by a request still being stored
    try:
        refused = post(client, "/v1/track", {"userId": "u-9", "event": "Clicked", "messageId": "o-1"}, write_key)
    finally:
        gate.release()
    accepted = post(client, "/v1/track", {"userId": "u-9", "event": "Clicked", "messageId": "o-1"}, write_key)

    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert refused.json["code"] == "overloaded"
    assert accepted.status_code == 200 and accepted.json["stored"] == 1
    assert len(events(runtime, message_id="o-1")) == 1


@pytest.mark.settings(ingest_max_in_flight=1, ingest_queue_wait=0.05)
def test_the_official_python_client_retries_a_429_until_it_is_stored(live_server, write_key, app, runtime):
    from segment.analytics import Client

    gate = app.extensions["ccm.ingest_gate"]
    assert gate.acquire(timeout=1)
    released = threading.Event()
    threading.Timer(1.0, lambda: (released.set(), gate.release())).start()  # it passes while the client backs off
    failures: list[Any] = []
    segment = Client(write_key, host=live_server, on_error=lambda e, b: failures.append(e))  # its consumer retries
    segment.track("u-10", "Checked Out", {"total": 12})
    segment.flush()

    assert failures == [] and released.is_set()
    assert [event.name for event in events(runtime, user_id="u-10")] == ["Checked Out"]


def test_a_batch_resolves_its_profiles_as_its_calls_would_one_by_one(client, write_key, runtime):
    post(client, "/v1/identify", {"userId": "u-7", "anonymousId": "dev-7", "messageId": "b0"}, write_key)
    batch = [
        {"type": "track", "anonymousId": "dev-9", "event": "Viewed", "messageId": "b1"},
        {"type": "identify", "anonymousId": "dev-9", "userId": "u-9", "messageId": "b2"},
        {"type": "track", "userId": "u-9", "event": "Bought", "messageId": "b3"},
        {"type": "track", "userId": "u-10", "event": "Viewed", "messageId": "b4"},
        {"type": "page", "userId": "u-10", "anonymousId": "dev-10", "messageId": "b5"},
        {"type": "track", "anonymousId": "dev-7", "event": "Viewed", "messageId": "b6"},
    ]

    assert post(client, "/v1/batch", {"batch": batch}, write_key).status_code == 200

    by_message = {event.message_id: event.profile_id for event in events(runtime)}
    ninth, tenth, seventh = profile(runtime, "u-9"), profile(runtime, "u-10"), profile(runtime, "u-7")
    assert ninth is not None and tenth is not None and seventh is not None
    assert {by_message[m] for m in ("b1", "b2", "b3")} == {ninth.id}
    assert {by_message[m] for m in ("b4", "b5")} == {tenth.id}
    assert by_message["b6"] == seventh.id


def test_concurrent_identifies_of_one_profile_keep_every_trait(app, write_key, runtime):
    post(app.test_client(), "/v1/identify", {"userId": "u-12", "messageId": "c-0"}, write_key)

    def identify(index: int) -> int:
        body = {"userId": "u-12", "traits": {f"trait_{index}": index}, "messageId": f"c-{index + 1}"}
        track = {"type": "track", "userId": "u-12", "event": "Tapped", "messageId": f"t-{index}"}
        batch = {"batch": [track, {**body, "type": "identify"}]}
        return post(app.test_client(), "/v1/batch", batch, write_key).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(identify, range(16))) == [200] * 16

    assert profile(runtime, "u-12").attributes == {f"trait_{index}": index for index in range(16)}


def test_a_deadlock_is_a_503_to_retry_not_an_outage(client, write_key, runtime, monkeypatch, caplog):
    import psycopg.errors
    from sqlalchemy.exc import OperationalError

    from ccm.ingest import service

    def deadlocked(**_: Any) -> None:
        raise OperationalError("INSERT …", {}, psycopg.errors.DeadlockDetected("deadlock detected"))

    monkeypatch.setattr(service, "ingest", deadlocked)
    response = post(client, "/v1/track", {"userId": "u-13", "event": "Tapped", "messageId": "d-1"}, write_key)

    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json["code"] == "conflict"
    assert "database unavailable" not in caplog.text
