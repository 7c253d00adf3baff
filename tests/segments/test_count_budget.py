"""A count that runs out of its time budget answers an estimate, marked approximate."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from ccm.db import insert_many
from ccm.ids import new_id
from ccm.profiles.models import Profile
from tests.segments.conftest import NOW

ROWS = 40_000
HALF = {"attribute": "attributes.group", "op": "in", "values": [0, 1]}
"""Half the profiles: attributes.group cycles through 0..3."""


@pytest.fixture
def crowd(runtime, workspace):
    ws = workspace[0]
    with runtime.db.unit_of_work() as session:
        rows = [
            {
                "id": new_id("prf"),
                "workspace_id": ws,
                "external_id": f"u{i}",
                "attributes": {"group": i % 4},
                "chat": {},
                "channels": [],
                "preferences": {},
                "engagement": {},
                "engagement_score": 0.0,
                "created_at": NOW,
                "updated_at": NOW,
            }
            for i in range(ROWS)
        ]
        for start in range(0, ROWS, 5000):
            insert_many(session.connection(), Profile.__table__, rows[start : start + 5000])
    with runtime.db.engine.connect() as connection:
        connection.execute(text("ANALYZE"))
        connection.commit()
    return ws


def test_a_count_within_its_budget_is_exact(api, crowd):
    assert api.post("/v1/segments/count", json={"rules": HALF}).json == {"count": ROWS // 2, "approximate": False}


@pytest.mark.settings(segment_count_budget_ms=1)
def test_a_count_past_its_budget_answers_an_estimate(api, crowd, monkeypatch):
    from ccm.segments import counting

    # The count's 1 ms runs out; the estimate's own budget is made ample, so that a loaded machine
    # (the embedded run once took over 500 ms for the sample) still answers the sampled estimate.
    monkeypatch.setattr(counting, "ESTIMATE_MIN_MS", 5_000)
    answer = api.post("/v1/segments/count", json={"rules": HALF}).json
    assert answer["approximate"] is True
    assert ROWS // 2 * 0.7 < answer["count"] < ROWS // 2 * 1.3, answer
    segment = api.post("/v1/segments", json={"name": "half", "rules": HALF}).json
    saved = api.get(f"/v1/segments/{segment['id']}/count").json
    assert saved["approximate"] is True and ROWS // 2 * 0.7 < saved["count"] < ROWS // 2 * 1.3, saved
    # the session is usable after the interrupted count: the segment still reads
    assert api.get(f"/v1/segments/{segment['id']}").status_code == 200


@pytest.mark.settings(segment_count_budget_ms=1)
def test_when_the_sample_runs_out_too_the_answer_is_still_an_estimate(api, crowd, monkeypatch):
    from ccm.segments import counting

    monkeypatch.setattr(counting, "ESTIMATE_MIN_MS", 1)
    answer = api.post("/v1/segments/count", json={"rules": HALF}).json
    # PostgreSQL: the planner's row estimate; SQLite: every profile of the workspace (an upper bound)
    assert answer["approximate"] is True and 1 <= answer["count"] <= ROWS, answer
