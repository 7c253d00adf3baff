"""Fixtures and helpers of the campaign tests: many profiles written at once, a marketing
template, a workspace with a postal address, a segment of everyone, and a campaign."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, insert, select

from ccm.campaigns.models import Campaign
from ccm.db import utcnow
from ccm.ids import new_id
from ccm.messages.models import Message
from ccm.profiles.models import Profile
from tests.support.api import wait_for

PROMO_HTML = "<p>Hello {{ first_name }}, our spring sale starts now.</p>"


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def seed_profiles(runtime: Any, workspace_id: str, count: int, *, start: int = 0, **fields: Any) -> list[str]:
    """``count`` profiles ``p<n>`` with addresses ``p<n>@example.com``, written in one statement;
    their ids, in order."""
    now = utcnow()
    rows = [
        {
            "id": new_id("prf"),
            "workspace_id": workspace_id,
            "external_id": f"p{n}",
            "email": f"p{n}@example.com",
            "chat": {},
            "attributes": {"first_name": f"P{n}"},
            "channels": [],
            "preferences": {},
            "engagement": {},
            "engagement_score": 0.0,
            "created_at": now,
            "updated_at": now,
            **fields,
        }
        for n in range(start, start + count)
    ]
    with runtime.db.unit_of_work() as session:
        for first in range(0, len(rows), 2000):
            session.execute(insert(Profile), rows[first : first + 2000])
    return [row["id"] for row in rows]


def publish_promo(api: Any, key: str = "promo", *, html: str = PROMO_HTML, variables: list[str] | None = None) -> None:
    body = {
        "key": key,
        "category": "marketing",
        "variables": variables if variables is not None else ["first_name"],
        "variants": [{"channel": "email", "subject": f"Spring sale ({key})", "html": html}],
    }
    created = api.post("/v1/templates", json=body)
    assert created.status_code == 201, created.json
    assert api.post(f"/v1/templates/{key}/publish").status_code == 201


def set_postal_address(api: Any) -> None:
    answer = api.patch("/v1/workspace", json={"policy": {"postal_address": "1 Main St, Springfield, USA"}})
    assert answer.status_code == 200, answer.json


def everyone(api: Any, name: str = "everyone") -> str:
    """A segment every profile of the workspace with an email address is in; its id."""
    answer = api.post("/v1/segments", json={"name": name, "rules": {"attribute": "email", "op": "exists"}})
    assert answer.status_code == 201, answer.json
    return answer.json["id"]


def campaign_body(segment: str, **overrides: Any) -> dict[str, Any]:
    return {"name": "Spring sale", "template": "promo", "segment": segment, **overrides}


def make_campaign(api: Any, segment: str, **overrides: Any) -> dict[str, Any]:
    answer = api.post("/v1/campaigns", json=campaign_body(segment, **overrides))
    assert answer.status_code == 201, answer.json
    return answer.json


def ready(api: Any) -> str:
    """A workspace that may send marketing email, a published promo template, and the segment."""
    set_postal_address(api)
    publish_promo(api)
    return everyone(api)


def campaign_row(runtime: Any, campaign_id: str) -> Campaign:
    with runtime.db.read_only() as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        return campaign


def message_counts(runtime: Any, campaign_id: str) -> dict[str, int]:
    with runtime.db.read_only() as session:
        rows = session.execute(
            select(Message.status, func.count()).where(Message.campaign_id == campaign_id).group_by(Message.status)
        ).all()
    return dict(rows)


def wait_status(api: Any, campaign_id: str, status: str, timeout: float = 60) -> dict[str, Any]:
    def reached() -> Any:
        body = api.get(f"/v1/campaigns/{campaign_id}").json
        return body if body["status"] == status else None

    return wait_for(reached, timeout=timeout, message=f"campaign {campaign_id} to be {status}")
