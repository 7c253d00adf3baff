"""The embedded default never freezes: while the worker renders slow templates, the API answers at
once, because no render, MIME build or provider call happens inside a transaction."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import pytest
from sqlalchemy import create_engine, text

from ccm.message_templates.sandbox import TemplateBundle
from ccm.worker import InProcessWorker
from tests.messages.test_send_api import finished, send
from tests.support.factories import publish_template, put_profile

QUEUED = 8
RENDER_SECONDS = 0.8
"""How long one heavy render takes on an idle core; two worker threads sharing the GIL with the
API take about twice that each, well inside the render cap set below."""
FAST = 0.5
"""Every API request must answer in less than this while the renders go on."""


def heavy_source(loops: int) -> str:
    """A real template the sandbox allows: a big loop that builds nothing, well inside the work budget."""
    return (
        f"{{% for i in range({loops}) %}}{{% for j in range(1000) %}}{{% set x = i * j %}}"
        "{% endfor %}{% endfor %}<p>Hello {{ first_name }}</p>"
    )


def calibrated_loops(sandbox, seconds: float) -> int:
    """The outer loop count that makes ``heavy_source`` take about ``seconds`` on this machine."""
    sample = 20
    bundle = TemplateBundle("calibration", {"html": heavy_source(sample)}, cacheable=False)
    started = time.perf_counter()
    sandbox.render(bundle, "html", {"first_name": "Ada"}, autoescape=True)
    return max(sample, int(sample * seconds / (time.perf_counter() - started)))


def slowest(probes: dict[str, Callable[[], object]], rounds: int = 3) -> dict[str, float]:
    """The longest each probe took, over a few rounds taken in turn."""
    worst = dict.fromkeys(probes, 0.0)
    for _ in range(rounds):
        for name, probe in probes.items():
            started = time.perf_counter()
            probe()
            worst[name] = max(worst[name], time.perf_counter() - started)
    return worst


@pytest.fixture
def heavy_queue(api, runtime):
    """Eight messages of a heavy template, queued before any worker runs; then a worker starts."""
    loops = calibrated_loops(runtime.sandbox, RENDER_SECONDS)
    publish_template(
        api,
        "heavy",
        variables=["first_name"],
        variants=[{"channel": "email", "locale": "en", "subject": "Hi {{ first_name }}", "html": heavy_source(loops)}],
    )
    publish_template(api)
    put_profile(api, "u1")
    ids = [send(api, template="heavy").json["id"] for _ in range(QUEUED)]
    worker = InProcessWorker(runtime, threads=2)
    worker.start()
    time.sleep(0.3)  # both worker threads are inside a render by now
    yield ids
    worker.stop()


def unfinished(api, ids: list[str]) -> int:
    return sum(api.get(f"/v1/messages/{message_id}").json["status"] not in ("delivered", "sent") for message_id in ids)


@pytest.mark.settings(render_timeout=8.0, claim_timeout=30.0)
def test_the_api_answers_at_once_while_the_worker_renders(api, heavy_queue):
    timings = slowest(
        {
            "GET /healthz": lambda: api.get("/healthz"),
            "POST /v1/messages": lambda: send(api),
            "GET /v1/messages/{id}": lambda: api.get(f"/v1/messages/{heavy_queue[-1]}"),
            "POST /v1/templates/welcome/preview": lambda: api.post(
                "/v1/templates/welcome/preview", json={"data": {"first_name": "Ada", "plan": "pro"}}
            ),
        }
    )
    assert all(seconds < FAST for seconds in timings.values()), timings
    assert unfinished(api, heavy_queue) > 0, "the renders ended before the requests were timed"
    assert all(finished(api, message_id, timeout=30)["status"] == "delivered" for message_id in heavy_queue)


def stale_transactions(connection) -> int:
    """Transactions open and idle for more than half a second (a render inside one, say)."""
    time.sleep(0.2)
    return connection.execute(
        text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%' AND now() - xact_start > interval '0.5 seconds'"
        )
    ).scalar()


@pytest.mark.settings(render_timeout=8.0, claim_timeout=30.0)
def test_no_write_lock_is_held_while_rendering(runtime, api, heavy_queue):
    url = runtime.settings.resolved_database_url
    if url.startswith("sqlite"):
        # A writer that waits at most 0.2 s for SQLite's single write lock.
        connection = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=0.2, isolation_level=None)
        try:
            for _ in range(5):
                connection.execute("BEGIN IMMEDIATE")
                connection.execute("COMMIT")
                time.sleep(0.05)
        finally:
            connection.close()
    else:
        engine = create_engine(url)
        try:
            with engine.begin() as connection:  # the row of a message being rendered is not locked
                connection.execute(text("SET LOCAL lock_timeout = '200ms'"))
                connection.execute(
                    text("UPDATE message SET updated_at = updated_at WHERE id = :id"), {"id": heavy_queue[0]}
                )
            with engine.connect() as connection:  # and no transaction stays open across a render
                assert max(stale_transactions(connection) for _ in range(5)) == 0
        finally:
            engine.dispose()
    assert unfinished(api, heavy_queue) > 0, "the renders ended before the lock was tried"
