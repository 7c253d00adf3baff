"""Running imports: pause, resume and cancel with a real worker; a worker that dies mid-chunk
(an exception inside the transaction, a SIGKILLed process) resumes from the checkpoint with
every row written exactly once."""

from __future__ import annotations

import threading
import time

import pytest

from ccm.imports import service
from ccm.imports.models import ImportRowError
from ccm.imports.service import run_import
from ccm.profiles.models import Profile
from tests.conftest import IN_CI, REDIS_URL
from tests.imports.conftest import count, upload
from tests.support.api import wait_for
from tests.support.processes import ccm_env, start_workers

ROWS = 3000
needs_redis = pytest.mark.skipif(not REDIS_URL and not IN_CI, reason="needs CCM_TEST_REDIS_URL (Redis)")


def big_file(rows: int = ROWS, *, bad_every: int = 100) -> str:
    """``rows`` people; every ``bad_every``-th has an invalid email (a report line each)."""
    lines = ["id,email,plan"]
    lines += [f"u{i},{f'broken{i}' if i % bad_every == 0 else f'p{i}@example.com'},pro" for i in range(rows)]
    return "\n".join(lines) + "\n"


def status(api, import_id):
    return api.get(f"/v1/imports/{import_id}").json


def wait_status(api, import_id, wanted, timeout=30.0):
    return wait_for(lambda: (s := status(api, import_id))["status"] == wanted and s, timeout=timeout, message=wanted)


def assert_exactly_once(api, runtime, import_id, rows=ROWS, bad_every=100):
    final = status(api, import_id)
    invalid = len(range(0, rows, bad_every))
    assert final["status"] == "completed"
    assert final["processed_rows"] == rows
    assert final["counts"] == {
        "created": rows - invalid,
        "updated": 0,
        "unchanged": 0,
        "invalid": invalid,
        "duplicate": 0,
    }
    assert count(runtime, Profile) == rows - invalid
    assert count(runtime, ImportRowError) == invalid


@pytest.mark.settings(import_chunk_rows=20)
def test_pause_stops_between_chunks_and_resume_finishes_every_row(api, runtime, worker):
    import_id = upload(api, big_file()).json["id"]
    wait_for(lambda: status(api, import_id)["processed_rows"] > 0, message="the first chunks")

    paused = api.post(f"/v1/imports/{import_id}/pause")
    assert paused.status_code == 200 and paused.json["status"] == "paused"
    time.sleep(1.0)  # at most the chunk being written lands after the pause
    held = status(api, import_id)["processed_rows"]
    time.sleep(0.5)
    assert status(api, import_id)["processed_rows"] == held < ROWS

    assert api.post(f"/v1/imports/{import_id}/resume").json["status"] == "pending"
    wait_status(api, import_id, "completed")
    assert_exactly_once(api, runtime, import_id)


@pytest.mark.settings(import_chunk_rows=20)
def test_cancel_stops_the_import_and_keeps_what_was_written(api, runtime, worker):
    import_id = upload(api, big_file()).json["id"]
    wait_for(lambda: status(api, import_id)["processed_rows"] > 0, message="the first chunks")

    cancelled = api.post(f"/v1/imports/{import_id}/cancel")
    assert cancelled.json["status"] == "cancelled" and cancelled.json["finished_at"]
    time.sleep(1.0)

    final = status(api, import_id)
    assert final["status"] == "cancelled" and final["processed_rows"] < ROWS
    assert count(runtime, Profile) == final["counts"]["created"]
    assert api.post(f"/v1/imports/{import_id}/resume").status_code == 409


@pytest.mark.settings(import_chunk_rows=500)
def test_a_chunk_that_fails_mid_transaction_is_redone_once_on_resume(api, runtime, monkeypatch):
    import_id = upload(api, big_file()).json["id"]
    real, calls = service.apply_chunk, []

    def dies_in_the_second_chunk(session, context, rows):
        counts = real(session, context, rows)  # its profiles and report lines are written …
        calls.append(len(rows))
        if len(calls) == 2:
            raise RuntimeError("worker died")  # … and rolled back with the checkpoint
        return counts

    monkeypatch.setattr(service, "apply_chunk", dies_in_the_second_chunk)
    with pytest.raises(RuntimeError):
        run_import(runtime.db, import_id, grace=1.0)

    halfway = status(api, import_id)
    assert halfway["status"] == "running" and halfway["checkpoint"] == 500
    assert count(runtime, Profile) == halfway["counts"]["created"] == 495

    run_import(runtime.db, import_id, grace=1.0)
    assert_exactly_once(api, runtime, import_id)


@pytest.mark.settings(import_chunk_rows=50)
def test_two_workers_on_one_import_write_each_row_once(api, runtime):
    import_id = upload(api, big_file()).json["id"]
    runs = [threading.Thread(target=run_import, args=(runtime.db, import_id), kwargs={"grace": 1.0}) for _ in range(2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(timeout=60)

    assert_exactly_once(api, runtime, import_id)


@needs_redis
@pytest.mark.e2e
@pytest.mark.settings(import_chunk_rows=25)
def test_a_sigkilled_worker_process_is_resumed_from_its_checkpoint(api, runtime, settings, tmp_path):
    rows = 6000
    env = ccm_env(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        broker_url=settings.broker_url,
        redis_namespace=settings.redis_namespace,
        secret_key="test-secret",
        import_chunk_rows=25,
        claim_timeout=2,
        smtp_timeout=0.5,
        render_timeout=0.5,
        relay_grace=1,
        relay_interval=0.2,
        broker_heartbeat_timeout=2,
    )
    import_id = upload(api, big_file(rows)).json["id"]
    crashing = start_workers(env, tmp_path / "crash.log")
    try:
        wait_for(lambda: status(api, import_id)["processed_rows"] >= 500, timeout=60, message="some chunks done")
    finally:
        crashing.kill()
    left = status(api, import_id)
    assert left["status"] == "running" and left["processed_rows"] < rows

    healthy = start_workers(env, tmp_path / "healthy.log")
    try:
        wait_status(api, import_id, "completed", timeout=90)
    finally:
        healthy.stop()
    assert_exactly_once(api, runtime, import_id, rows=rows)
