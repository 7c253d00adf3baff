"""``POST /v1/messages/batch``: up to 1,000 messages in one request and one transaction, each
validated, idempotent on its own key and answered on its own, published together after commit."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from ccm.jobs import PendingJob
from ccm.messages.models import Message
from ccm.profiles.models import Profile
from ccm.relay import relay_once
from tests.messages.test_send_api import finished
from tests.support.factories import publish_template, put_profile


def item(external_id="u1", key=None, **fields):
    body = {"to": {"external_id": external_id}, "template": "welcome", **fields}
    return {**body, "idempotency_key": key} if key else body


def batch(api, *items):
    return api.post("/v1/messages/batch", json={"messages": list(items)})


def count(runtime, model):
    with runtime.db.read_only() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_each_item_is_accepted_or_refused_on_its_own(api, runtime):
    publish_template(api)
    put_profile(api, "u1")
    put_profile(api, "u2", attributes={"first_name": "Bo"})
    response = batch(
        api,
        item("u1"),
        item("ghost"),
        item("u1", template="nope"),
        item("u2"),  # the template needs plan: neither the data nor u2 has it
        item("u2", data={"plan": "team"}),
        item("u1", channel="chat"),
    )
    assert response.status_code == 200
    answers = response.json["items"]
    assert [(a["index"], a["status"]) for a in answers] == [(0, 202), (1, 404), (2, 404), (3, 422), (4, 202), (5, 422)]
    assert [a["error"]["details"]["field"] for a in answers if a["status"] != 202] == [
        "to.external_id",
        "template",
        "data.plan",
        "channel",
    ]
    assert answers[3]["error"]["code"] == "validation_failed"
    accepted = [a["id"] for a in answers if a["status"] == 202]
    assert all(not a["replayed"] for a in answers if a["status"] == 202)
    assert {api.get(f"/v1/messages/{i}").json["status"] for i in accepted} == {"queued"}
    assert count(runtime, Message) == count(runtime, PendingJob) == 2


def test_accepted_items_are_delivered(api, worker):
    publish_template(api)
    for n in range(5):
        put_profile(api, f"u{n}")
    answers = batch(api, *(item(f"u{n}", data={"plan": f"p{n}"}) for n in range(5))).json["items"]
    delivered = [finished(api, a["id"]) for a in answers]
    assert {m["status"] for m in delivered} == {"delivered"}
    outbox = api.get("/v1/outbox").json["items"]
    assert sorted(i["to"] for i in outbox) == [f"u{n}@example.com" for n in range(5)]


def test_a_repeated_batch_replays_every_item(api, runtime):
    publish_template(api)
    put_profile(api, "u1")
    items = [item("u1", key=f"order-{n}", data={"plan": str(n)}) for n in range(3)] + [item("ghost", key="x")]
    first = batch(api, *items).json["items"]
    again = batch(api, *reversed(items)).json["items"]
    assert [a["status"] for a in first] == [202, 202, 202, 404]
    assert [(a["status"], a.get("id"), a.get("replayed")) for a in reversed(again[1:])] == [
        (202, a["id"], True) for a in first[:3]
    ]
    assert again[0]["status"] == 404  # a refused item stored nothing: it is tried again
    assert count(runtime, Message) == 3


def test_a_key_reused_with_another_message_is_a_422_for_that_item(api, runtime):
    publish_template(api)
    put_profile(api, "u1")
    assert batch(api, item("u1", key="k1"), item("u1", key="k2")).status_code == 200
    answers = batch(api, item("u1", key="k1", data={"plan": "other"}), item("u1", key="k2")).json["items"]
    assert answers[0]["status"] == 422
    assert answers[0]["error"]["code"] == "idempotency_key_reused"
    assert answers[0]["error"]["details"]["field"] == "idempotency_key"
    assert (answers[1]["status"], answers[1]["replayed"]) == (202, True)
    assert count(runtime, Message) == 2


def test_the_same_key_twice_in_one_batch_is_one_message(api, runtime):
    publish_template(api)
    put_profile(api, "u1")
    same = item("u1", key="dup", data={"plan": "a"})
    answers = batch(api, same, same, item("u1", key="dup", data={"plan": "b"})).json["items"]
    assert [a["status"] for a in answers] == [202, 202, 422]
    assert answers[1]["id"] == answers[0]["id"] and answers[1]["replayed"] and not answers[0]["replayed"]
    assert answers[2]["error"]["code"] == "idempotency_key_reused"
    assert count(runtime, Message) == count(runtime, PendingJob) == 1


def test_a_key_after_a_refused_item_with_it_is_new_work(api, runtime):
    publish_template(api)
    put_profile(api, "u1")
    answers = batch(api, item("ghost", key="k"), item("u1", key="k")).json["items"]
    assert [a["status"] for a in answers] == [404, 202]  # as if sent one after the other
    assert count(runtime, Message) == 1


def test_field_order_does_not_change_an_items_identity(api):
    publish_template(api)
    put_profile(api, "u1")
    first = batch(api, {"idempotency_key": "k", "template": "welcome", "to": {"external_id": "u1"}}).json["items"][0]
    again = batch(api, {"to": {"external_id": "u1"}, "template": "welcome", "idempotency_key": "k"}).json["items"][0]
    assert (again["id"], again["replayed"]) == (first["id"], True)


def test_a_single_sends_key_is_not_a_batch_items(api, runtime):
    publish_template(api)
    put_profile(api, "u1")
    single = api.post(
        "/v1/messages", json={"to": {"external_id": "u1"}, "template": "welcome"}, headers={"Idempotency-Key": "k"}
    )
    assert single.status_code == 202
    answer = batch(api, item("u1", key="k")).json["items"][0]
    assert (answer["status"], answer["error"]["code"]) == (422, "idempotency_key_reused")
    assert count(runtime, Message) == 1


def test_a_batch_breaking_the_schema_is_refused_whole(api, runtime):
    publish_template(api)
    put_profile(api, "u1")
    for bad, field in [
        ({"channel": "fax"}, "messages.1.channel"),
        ({"idempotency_key": ""}, "messages.1.idempotency_key"),
        ({"idempotency_key": "é"}, "messages.1.idempotency_key"),
        ({"surprise": 1}, "messages.1.surprise"),
        ({"to": {"chat": {}}}, "messages.1.to"),
    ]:
        response = batch(api, item("u1"), {**item("u1"), **bad})
        assert (response.status_code, response.json["error"]["details"]["field"]) == (422, field), bad
    empty = api.post("/v1/messages/batch", json={"messages": []})
    assert (empty.status_code, empty.json["error"]["details"]["field"]) == (422, "messages")
    assert count(runtime, Message) == 0


def test_more_than_a_thousand_items_or_a_megabyte_is_refused(api, runtime):
    publish_template(api)
    put_profile(api, "u1")
    too_many = batch(api, *[item("u1")] * 1001)
    assert (too_many.status_code, too_many.json["error"]["details"]["field"]) == (422, "messages")
    too_big = batch(api, *[item("u1", data={"plan": "x" * 2000})] * 600)
    assert too_big.status_code == 413
    assert count(runtime, Message) == 0


def test_a_full_batch_is_accepted(api, runtime):
    publish_template(api)
    for n in range(10):
        put_profile(api, f"u{n}")
    answers = batch(api, *(item(f"u{n % 10}", key=f"k{n}") for n in range(1000))).json["items"]
    assert [a["index"] for a in answers] == list(range(1000))
    assert {a["status"] for a in answers} == {202} and len({a["id"] for a in answers}) == 1000
    assert count(runtime, Message) == count(runtime, PendingJob) == 1000


def test_an_inline_profile_is_written_only_with_its_accepted_item(api, runtime):
    publish_template(api)
    answers = batch(
        api,
        {"to": {"email": "new@example.com", "attributes": {"first_name": "Bo"}}, "template": "welcome"},
        {"to": {"email": "other@example.com", "attributes": {"first_name": "Cy", "plan": "p"}}, "template": "welcome"},
    ).json["items"]
    assert [a["status"] for a in answers] == [422, 202]
    assert api.get("/v1/profiles?email=new@example.com").json["items"] == []
    assert len(api.get("/v1/profiles?email=other@example.com").json["items"]) == 1
    assert count(runtime, Profile) == 1


def test_jobs_are_published_together_after_commit(api, runtime, monkeypatch):
    import ccm.brokers

    publish_template(api)
    put_profile(api, "u1")
    batches = []
    original = ccm.brokers.enqueue_many
    monkeypatch.setattr(
        ccm.brokers,
        "enqueue_many",
        lambda broker, messages: (batches.append(len(messages)), original(broker, messages)),
    )
    batch(api, *(item("u1") for _ in range(7)))
    assert batches == [1]  # one broker message carrying the seven (CCM_DELIVERY_BATCH is 50)
    monkeypatch.setattr(runtime, "settings", runtime.settings.model_copy(update={"delivery_batch": 3}))
    batch(api, *(item("u1") for _ in range(7)))
    assert batches == [1, 3]  # 3 + 3 + 1, in one round trip


def test_a_failed_publish_leaves_the_batch_to_the_relay(api, runtime, monkeypatch):
    import ccm.brokers

    publish_template(api)
    put_profile(api, "u1")

    def down(broker, messages):
        raise OSError("broker down")

    monkeypatch.setattr(ccm.brokers, "enqueue_many", down)
    answers = batch(api, *(item("u1") for _ in range(3))).json["items"]
    assert {a["status"] for a in answers} == {202}
    published = []
    runtime.publisher.publish = lambda actor, queue, args: published.append(tuple(args))  # type: ignore[method-assign]
    assert relay_once(runtime) == 3  # due at once, not after the grace
    assert sorted(published) == sorted((a["id"],) for a in answers)


def test_concurrent_batches_with_the_same_keys_make_one_message_per_key(app, api, runtime):
    publish_template(api)
    put_profile(api, "u1")
    items = [item("u1", key=f"k{n}") for n in range(30)]
    orders = [items if n % 2 else items[::-1] for n in range(4)]  # opposite orders: no deadlock either
    results: dict[int, list] = {}

    def post(n):
        client = app.test_client()
        headers = {"Authorization": f"Bearer {api.key}"}
        results[n] = client.post("/v1/messages/batch", json={"messages": orders[n]}, headers=headers).json["items"]

    threads = [threading.Thread(target=post, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids_by_key: dict[str, set[str]] = {}
    for n, answers in results.items():
        for answer, sent in zip(answers, orders[n], strict=True):
            assert answer["status"] in (202, 409), answer
            if answer["status"] == 202:
                ids_by_key.setdefault(sent["idempotency_key"], set()).add(answer["id"])
    assert len(results) == 4 and all(len(ids) == 1 for ids in ids_by_key.values())
    assert count(runtime, Message) == 30


def test_the_batch_endpoint_is_in_the_document(app):
    document = app.test_client().get("/v1/openapi.json").json
    operation = document["paths"]["/v1/messages/batch"]["post"]
    assert {"200", "401", "413", "422", "503"} <= set(operation["responses"])
    schema = document["components"]["schemas"]["BatchIn"]["properties"]["messages"]
    assert (schema["minItems"], schema["maxItems"]) == (1, 1000)
