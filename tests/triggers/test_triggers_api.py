"""``/v1/triggers``: making, changing, stopping and reading triggers; refusing bad definitions."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from ccm.triggers.models import Trigger, TriggerVersion
from tests.triggers.conftest import make_trigger, publish_cart_template, trigger_body

CANCEL = {"event": "order_completed", "match_property": "cart_id"}


@pytest.fixture
def template(api):
    publish_cart_template(api)


def stored(runtime):
    with runtime.db.read_only() as session:
        return (
            session.scalar(select(func.count()).select_from(Trigger)),
            session.scalar(select(func.count()).select_from(TriggerVersion)),
        )


def test_a_trigger_is_created_at_version_1_and_read_back(api, template):
    created = make_trigger(
        api,
        name="Cart reminder",
        where=[{"property": "total", "op": "exists"}],
        delay_seconds=3600,
        cancel=CANCEL,
        topic="carts",
    )

    assert created["version"] == 1 and created["active"] is True
    assert api.get("/v1/triggers/cart-reminder").json == created
    assert created["cancel"] == CANCEL
    assert created["where"] == [{"property": "total", "op": "exists"}]
    assert [t["key"] for t in api.get("/v1/triggers").json["items"]] == ["cart-reminder"]


def test_a_change_is_the_next_version_and_the_old_one_stays(api, template):
    make_trigger(api, delay_seconds=600)

    patched = api.patch("/v1/triggers/cart-reminder", json={"delay_seconds": 3600})
    replaced = api.put("/v1/triggers/cart-reminder", json={"event": "checkout_abandoned", "template": "cart-reminder"})

    assert (patched.status_code, patched.json["version"], patched.json["delay_seconds"]) == (200, 2, 3600)
    assert (replaced.json["version"], replaced.json["event"], replaced.json["delay_seconds"]) == (
        3,
        "checkout_abandoned",
        0,
    )
    versions = api.get("/v1/triggers/cart-reminder/versions").json["items"]
    assert [(v["version"], v["event"], v["delay_seconds"]) for v in versions] == [
        (3, "checkout_abandoned", 0),
        (2, "cart_abandoned", 3600),
        (1, "cart_abandoned", 600),
    ]


def test_an_edit_that_changes_nothing_makes_no_version(api, template, runtime):
    make_trigger(api, delay_seconds=60)
    same = {"event": "cart_abandoned", "template": "cart-reminder", "delay_seconds": 60.0}

    replaced = api.put("/v1/triggers/cart-reminder", json=same)
    renamed = api.patch("/v1/triggers/cart-reminder", json={"name": "Renamed", "delay_seconds": 60})

    assert replaced.json["version"] == 1
    assert (renamed.json["version"], renamed.json["name"]) == (1, "Renamed")
    assert stored(runtime) == (1, 1)


def test_patch_null_removes_an_optional_part_and_keeps_a_required_one(api, template):
    make_trigger(api, delay_seconds=60, cancel=CANCEL, topic="carts")

    patched = api.patch("/v1/triggers/cart-reminder", json={"cancel": None, "topic": None, "event": None})

    assert (patched.json["cancel"], patched.json["topic"], patched.json["event"]) == (None, None, "cart_abandoned")


def test_deactivate_and_activate(api, template):
    make_trigger(api)

    stopped = api.post("/v1/triggers/cart-reminder/deactivate")
    started = api.post("/v1/triggers/cart-reminder/activate")

    assert (stopped.json["active"], started.json["active"]) == (False, True)
    assert started.json["version"] == 1


def test_a_second_trigger_with_the_same_key_is_a_409(api, template, runtime):
    make_trigger(api)

    again = api.post("/v1/triggers", json=trigger_body())

    assert again.status_code == 409
    assert again.json["error"]["details"]["field"] == "key"
    assert stored(runtime) == (1, 1)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"event": ""}, "event"),
        ({"event": "x" * 201}, "event"),
        ({"key": "Not A Key"}, "key"),
        ({"delay_seconds": -1}, "delay_seconds"),
        ({"delay_seconds": 91 * 86400}, "delay_seconds"),
        ({"delay_seconds": "60"}, "delay_seconds"),
        ({"cancel": {"event": "order_completed"}}, "cancel"),
        (
            {"delay_seconds": 60, "cancel": {"event": "order_completed", "match_property": "a..b"}},
            "cancel.match_property",
        ),
        ({"where": [{"property": "plan", "op": "like", "value": "p%"}]}, "where.0"),
        ({"where": [{"property": "plan", "op": "equals"}]}, "where.0.equals.value"),
        ({"where": [{"property": "plan", "op": "in", "values": []}]}, "where.0.in.values"),
        ({"where": [{"property": "", "op": "exists"}]}, "where.0.exists.property"),
        ({"channels": ["email", "email"]}, "channels"),
        ({"category": "promotional"}, "category"),
        ({"surprise": 1}, "surprise"),
    ],
    ids=[
        "empty-event",
        "long-event",
        "key",
        "negative-delay",
        "long-delay",
        "string-delay",
        "cancel-without-delay",
        "match-path",
        "unknown-op",
        "equals-without-value",
        "empty-in",
        "empty-path",
        "channels-twice",
        "category",
        "unknown-field",
    ],
)
def test_a_bad_definition_is_a_422_naming_the_field_and_stores_nothing(api, template, runtime, overrides, field):
    answer = api.post("/v1/triggers", json=trigger_body(**overrides))

    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["details"]["field"] == field
    assert stored(runtime) == (0, 0)


@pytest.mark.parametrize("key", ["nope", "ccm.system-text", "draft-only"])
def test_a_template_that_is_not_published_is_a_404_naming_it(api, template, runtime, key):
    api.post(
        "/v1/templates",
        json={"key": "draft-only", "category": "transactional", "variants": [{"channel": "sms", "body": "hi"}]},
    )

    answer = api.post("/v1/triggers", json=trigger_body(template=key))

    assert answer.status_code == 404, answer.json
    assert answer.json["error"]["details"]["field"] == "template"
    assert stored(runtime) == (0, 0)


def test_a_marketing_template_cannot_be_triggered_as_transactional(api, runtime):
    publish_cart_template(api, "promo", category="marketing")

    answer = api.post("/v1/triggers", json=trigger_body(template="promo", category="transactional"))

    assert answer.status_code == 422
    assert answer.json["error"]["details"]["field"] == "category"
    assert stored(runtime) == (0, 0)


def test_a_bad_edit_is_refused_and_keeps_the_current_version(api, template, runtime):
    make_trigger(api)

    no_delay = api.patch("/v1/triggers/cart-reminder", json={"cancel": CANCEL})
    no_template = api.put("/v1/triggers/cart-reminder", json={"event": "e", "template": "gone"})

    assert (no_delay.status_code, no_delay.json["error"]["details"]["field"]) == (422, "cancel")
    assert (no_template.status_code, no_template.json["error"]["details"]["field"]) == (404, "template")
    assert api.get("/v1/triggers/cart-reminder").json["version"] == 1
    assert stored(runtime) == (1, 1)


def test_an_unknown_trigger_is_a_404(api):
    assert api.get("/v1/triggers/nope").status_code == 404
    assert api.patch("/v1/triggers/nope", json={"delay_seconds": 1}).status_code == 404
    assert api.post("/v1/triggers/nope/deactivate").status_code == 404
    assert api.get("/v1/triggers/nope/fires").status_code == 404


def test_a_write_key_cannot_manage_triggers(client, write_key):
    answer = client.get("/v1/triggers", headers={"Authorization": f"Bearer {write_key}"})

    assert answer.status_code == 403


def test_another_workspaces_trigger_is_not_found(api, template, runtime):
    from ccm.auth.service import create_api_key
    from ccm.workspaces.service import get_or_create_workspace

    make_trigger(api)
    with runtime.db.unit_of_work() as session:
        other, _ = get_or_create_workspace(session=session, name="other")
        _, token = create_api_key(session=session, workspace_id=other.id)

    answer = api.client.get("/v1/triggers/cart-reminder", headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == 404
