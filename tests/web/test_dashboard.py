"""The dashboard: the last 14 days of messages by status and channel, rates and skip reasons,
for every role; older messages and other workspaces' stay out."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import insert, select

from ccm.db import utcnow
from ccm.engagement.models import EngagementEvent
from ccm.ids import id_at
from ccm.message_templates.models import TemplateVersion
from ccm.messages.models import Message
from ccm.workspaces.service import get_or_create_workspace
from tests.campaigns.conftest import publish_promo, seed_profiles


def write_messages(runtime, workspace_id, rows):
    """Messages of the promo template: ``(days ago, status, channel, reason)`` each."""
    now = utcnow()
    with runtime.db.unit_of_work() as session:
        version = session.scalars(select(TemplateVersion)).first()
        assert version is not None
        values = []
        for n, (days_ago, status, channel, reason) in enumerate(rows):
            at = now - dt.timedelta(days=days_ago)
            values.append(
                {
                    "id": id_at("msg", at),
                    "workspace_id": workspace_id,
                    "source": "api",
                    "send_key": f"k{workspace_id}{n}",
                    "category": "marketing",
                    "template_version_id": version.id,
                    "template_key": "promo",
                    "template_version": 1,
                    "failed_channels": [],
                    "channel": channel,
                    "data": {},
                    "track": True,
                    "route": [],
                    "status": status,
                    "reason": reason,
                    "deadline_at": at + dt.timedelta(days=1),
                    "claims": 0,
                    "created_at": at,
                    "updated_at": at,
                }
            )
        session.execute(insert(Message), values)
        return [v["id"] for v in values]


def cell(html: str, caption: str, row: str) -> list[str]:
    """The numbers of ``row`` in the chart table captioned ``caption``."""
    table = re.search(rf"<caption>{re.escape(caption)}</caption>(.*?)</table>", html, re.S)
    assert table, f"no table {caption!r}"
    found = re.search(rf'<th scope="row">{re.escape(row)}</th>(.*?)</tr>', table.group(1))
    assert found, f"no row {row!r} in {caption!r}"
    return re.findall(r"<td>([^<]*)</td>", found.group(1))


@pytest.fixture
def history(runtime, api, workspace):
    publish_promo(api)
    ids = write_messages(
        runtime,
        workspace[0],
        [
            (0, "delivered", "email", None),
            (0, "delivered", "email", None),
            (0, "sent", "sms", None),
            (1, "failed", "email", "bounced: 550 user unknown"),
            (1, "skipped", None, "no_consent: email, marketing"),
            (1, "skipped", None, "quiet_hours"),
            (2, "skipped", "email", "no_consent: email, news"),
            (20, "delivered", "chat", None),  # outside the window
        ],
    )
    profile = seed_profiles(runtime, workspace[0], 1)[0]
    with runtime.db.unit_of_work() as session:
        events = [(ids[0], "opened", False), (ids[0], "clicked", False), (ids[1], "opened", True)]
        session.execute(
            insert(EngagementEvent),
            [
                {"workspace_id": workspace[0], "profile_id": profile, "message_id": message, "kind": kind}
                | {"machine": machine, "source": "test", "dedupe_key": f"{message}{kind}{machine}"}
                for message, kind, machine in events
            ],
        )
        other, _ = get_or_create_workspace(session=session, name="other")
    write_messages(runtime, other.id, [(0, "failed", "email", "other workspace")])


@pytest.mark.parametrize("role", ["admin", "marketer", "agent", "viewer"])
def test_every_role_sees_the_last_14_days_by_status_and_channel(web_client, history, role):
    html = web_client(role).get("/").text
    assert re.search(r'data-count="messages">7<', html)  # the 20-day-old one and the other workspace's left out
    today, yesterday = utcnow().strftime("%m-%d"), (utcnow() - dt.timedelta(days=1)).strftime("%m-%d")
    statuses = re.search(r"<caption>Messages by status, day by day</caption><thead><tr><td></td>(.*?)</tr>", html)
    assert statuses and re.findall(r">(\w+)</th>", statuses.group(1)) == ["sent", "delivered", "failed", "skipped"]
    assert cell(html, "Messages by status, day by day", today) == ["1", "2", "0", "0"]
    assert cell(html, "Messages by status, day by day", yesterday) == ["0", "0", "1", "2"]
    assert cell(html, "Messages by channel", "email") == ["0", "2", "1", "1"]
    assert cell(html, "Messages by channel", "none") == ["0", "0", "0", "2"]
    assert cell(html, "Skip reasons", "no_consent") == ["2"] and cell(html, "Skip reasons", "quiet_hours") == ["1"]
    assert html.count('<svg role="img"') == 3


def test_rates_count_people_not_machines(web_client, history):
    html = web_client("viewer").get("/").text
    assert 'data-rate="delivery">75.0 %' in html  # 3 sent or delivered, 1 failed
    assert 'data-rate="open">33.3 %' in html  # one person's open of 3 delivered; the machine's left out
    assert 'data-rate="click">33.3 %' in html


def test_an_empty_workspace_says_there_is_nothing_yet(web_client):
    html = web_client("viewer").get("/").text
    assert "no data yet" in html and 'data-rate="delivery">—' in html
    assert re.search(r'data-count="messages">0<', html)


def test_the_dashboard_needs_a_login(app):
    answer = app.test_client().get("/")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]
