"""Outbound webhook subscriptions are refused at creation when deliveries would refuse them:
loopback, private and link-local targets need ``policy.webhooks_allow_private``. (IP literals and
``localhost`` only: resolving them reaches no network.)"""

from __future__ import annotations

import pytest

EVENTS = ["message.delivered"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "https://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:9000/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_a_private_target_is_refused_with_the_way_to_allow_it(api, url):
    answer = api.post("/v1/webhooks", json={"url": url, "events": EVENTS})
    assert answer.status_code == 422, answer.json
    error = answer.json["error"]
    assert error["details"]["field"] == "url"
    assert "internal address" in error["message"] and "set policy.webhooks_allow_private" in error["message"]
    assert api.get("/v1/webhooks").json["items"] == []


def test_a_private_target_is_accepted_once_the_workspace_allows_it(api):
    api.patch("/v1/workspace", json={"policy": {"webhooks_allow_private": True}})
    answer = api.post("/v1/webhooks", json={"url": "http://127.0.0.1:8080/hook", "events": EVENTS})
    assert answer.status_code == 201


def test_a_public_address_is_accepted(api):
    answer = api.post("/v1/webhooks", json={"url": "https://93.184.215.14/hook", "events": EVENTS})
    assert answer.status_code == 201, answer.json
