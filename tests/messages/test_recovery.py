"""Bounded recovery: a worker process group SIGKILLed five times while it delivers a deep queue,
then one worker left running. Every message must end terminal within the stated bound after the
last crash, the SMTP server must receive none of them twice, and exactly the messages it may
have received without the database knowing end ``sent(outcome_unknown)``.

The bound (README, "What a crash leaves behind"), once a worker runs again:
``CCM_CLAIM_TIMEOUT + CCM_RELAY_GRACE + CCM_RELAY_INTERVAL`` on RabbitMQ, plus
``CCM_BROKER_HEARTBEAT_TIMEOUT + CCM_RELAY_INTERVAL`` on Redis, plus the time the workers need
for the queue ahead. CI sends 400 messages once per broker; ``CCM_TEST_RECOVERY_MESSAGES=2000
CCM_TEST_RECOVERY_RUNS=3`` is the full version. Each run prints what it measured.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from ccm.messages.models import Message
from tests.messages.test_faults import needs_redis, worker_env
from tests.messages.test_send_api import send
from tests.support.factories import publish_template, put_profile
from tests.support.processes import start_workers

pytestmark = pytest.mark.e2e

MESSAGES = int(os.environ.get("CCM_TEST_RECOVERY_MESSAGES", "400"))
RUNS = int(os.environ.get("CCM_TEST_RECOVERY_RUNS", "1"))
KILLS = 5
THREADS = 4
TIMINGS = dict(claim_timeout=3, relay_grace=3, relay_interval=0.2, broker_heartbeat_timeout=2)
BOOT = 10.0
"""Seconds a ``dramatiq workers`` process may take to import CCM and start consuming here."""
RATE_FLOOR = 20.0
"""Messages a second one worker process delivers at the least on this machine (it does 100+)."""
TERMINAL = ("sent", "delivered", "failed", "skipped")
MESSAGE_ID = re.compile(rb"^Message-ID: <(msg_[0-9A-Z]+)@", re.MULTILINE)


def recovery_bound(settings) -> float:
    """Seconds after the last crash by which every message is terminal, the queue aside."""
    bound = TIMINGS["claim_timeout"] + TIMINGS["relay_grace"] + TIMINGS["relay_interval"]
    if not (settings.broker_url or "").startswith("amqp"):  # Redis: a dead worker's fetched messages
        bound += TIMINGS["broker_heartbeat_timeout"] + TIMINGS["relay_interval"]
    return bound


@needs_redis
@pytest.mark.settings(**TIMINGS)
@pytest.mark.parametrize("run", range(RUNS))
def test_every_message_is_terminal_in_bounded_time_after_repeated_sigkills(
    api, runtime, settings, smtp_server, tmp_path, run
):
    publish_template(api)
    for number in range(20):
        put_profile(api, f"u{number}")
    message_ids = {send(api, to={"external_id": f"u{n % 20}"}).json["id"] for n in range(MESSAGES)}
    env = worker_env(settings, smtp_server, **TIMINGS)
    rng = random.Random(os.environ.get("CCM_TEST_RECOVERY_SEED"))

    last_kill, remaining = kill_repeatedly(runtime, env, tmp_path, rng)
    survivor = start_workers(env, tmp_path / "survivor.log", threads=THREADS)
    try:
        allowed = BOOT + recovery_bound(settings) + remaining / RATE_FLOOR
        took = wait_all_terminal(runtime, last_kill, allowed)
    finally:
        survivor.stop()

    received = Counter(found.decode() for raw in smtp_server_raws(smtp_server) for found in MESSAGE_ID.findall(raw))
    rows = statuses(runtime)
    unknown = {id_ for id_, (status, reason) in rows.items() if reason and reason.startswith("outcome_unknown")}
    confirmed = {id_ for id_, (status, reason) in rows.items() if status == "sent"} - unknown
    republished = sum(int(n) for n in re.findall(r"relay: published (\d+) due jobs", logs(tmp_path)))
    requeued = sum(int(n) for n in re.findall(r"requeued (\d+) messages", logs(tmp_path)))
    print(
        "\nrecovery:",
        json.dumps(
            {
                "broker": "rabbitmq" if (settings.broker_url or "").startswith("amqp") else "redis",
                "messages": MESSAGES,
                "remaining_at_last_kill": remaining,
                "seconds_to_all_terminal_after_last_kill": round(took, 1),
                "allowed": round(allowed, 1),
                "received_twice": sum(1 for count in received.values() if count > 1),
                "outcome_unknown": len(unknown),
                "relay_republishes_per_message": round(republished / MESSAGES, 2),
                "requeued_from_dead_workers": requeued,
                "claimed_more_than_once": claimed_again(runtime),
            }
        ),
    )
    assert set(rows) == message_ids
    assert {status for status, _ in rows.values()} == {"sent"}, Counter(status for status, _ in rows.values())
    assert [id_ for id_, count in received.items() if count > 1] == []
    assert confirmed <= set(received)  # "sent" means the server has it
    assert set(received) - confirmed <= unknown  # what it got without the database knowing
    assert message_ids - set(received) <= unknown  # never handed over: only after the commit point
    assert len(unknown) <= KILLS * THREADS  # at most one provider call in flight per thread and crash


def kill_repeatedly(runtime, env, tmp_path, rng) -> tuple[float, int]:
    """Start a worker and SIGKILL its process group at a random moment while it delivers, KILLS
    times, spread over the queue. Returns when the last kill happened and how many messages were
    not terminal then."""
    for kill in range(KILLS):
        worker = start_workers(env, tmp_path / f"killed-{kill}.log", threads=THREADS)
        goal = MESSAGES * (kill + 1 + rng.uniform(-0.3, 0.3)) / (KILLS + 1.5)
        deadline = time.monotonic() + BOOT + MESSAGES / RATE_FLOOR
        while terminal_count(runtime) < goal and time.monotonic() < deadline and worker.alive():
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.3))
        worker.kill()
    return time.monotonic(), MESSAGES - terminal_count(runtime)


def wait_all_terminal(runtime, since: float, allowed: float) -> float:
    """Seconds from ``since`` until every message is terminal; fails past ``allowed`` (+ a minute
    to show how far off it was)."""
    while terminal_count(runtime) < MESSAGES:
        took = time.monotonic() - since
        if took > allowed + 60:
            break
        time.sleep(0.1)
    took = time.monotonic() - since
    left = MESSAGES - terminal_count(runtime)
    assert left == 0 and took <= allowed, f"{left} messages not terminal {took:.1f} s after the last kill"
    return took


def terminal_count(runtime) -> int:
    with runtime.db.read_only() as session:
        return session.scalar(select(func.count()).select_from(Message).where(Message.status.in_(TERMINAL)))


def statuses(runtime) -> dict[str, tuple[str, str | None]]:
    with runtime.db.read_only() as session:
        return {
            row.id: (row.status, row.reason)
            for row in session.execute(select(Message.id, Message.status, Message.reason))
        }


def claimed_again(runtime) -> int:
    """Messages a run took over from a claim that a killed worker left behind."""
    with runtime.db.read_only() as session:
        return session.scalar(select(func.count()).select_from(Message).where(Message.claims > 1))


def smtp_server_raws(smtp_server) -> list[bytes]:
    return [message.raw for message in list(smtp_server.messages)]


def logs(tmp_path) -> str:
    return "".join(path.read_text(errors="replace") for path in tmp_path.glob("*.log"))
