"""The job outbox, its relay and the broker wiring: every due job is published whatever the broker
holds, republishes back off, a started run leases its job, delayed jobs wait in the database,
and a dead Redis worker's fetched messages come back. Runs on each broker the suite runs on."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from ccm import jobs
from ccm.brokers import requeue_dead_workers
from ccm.config import Settings, SettingsError
from ccm.db import utcnow
from ccm.jobs import PendingJob
from ccm.messages.claims import DELIVER
from ccm.relay import relay_once
from ccm.worker import InProcessWorker

JOB = jobs.Job("messages.deliver", queue="deliveries")


@pytest.fixture
def published(runtime):
    """What the publisher sent, instead of sending it."""
    sent: list[tuple[str, tuple]] = []
    runtime.publisher.publish = lambda actor, queue, args: sent.append((actor, tuple(args)))  # type: ignore[method-assign]
    return sent


def add_jobs(runtime, count, *, delay=0.0):
    with runtime.db.unit_of_work() as session:
        for number in range(count):
            jobs.enqueue(session, JOB, f"msg_{number}", grace=runtime.settings.relay_grace, delay=delay)


def rows(runtime):
    with runtime.db.read_only() as session:
        return {row.key: row for row in session.scalars(select(PendingJob))}


def make_due(runtime):
    with runtime.db.unit_of_work() as session:
        session.execute(update(PendingJob).values(due_at=utcnow() - dt.timedelta(seconds=1)))


def test_the_relay_publishes_every_due_job_whatever_the_queue_holds(runtime, published):
    add_jobs(runtime, 3)
    published.clear()  # the fast path, right after commit
    make_due(runtime)
    assert relay_once(runtime) == 3  # however deep the queue: a dead worker may have held them
    assert sorted(published) == [(JOB.name, (f"msg_{n}",)) for n in range(3)]
    assert relay_once(runtime) == 0


def test_each_republish_waits_twice_as_long_up_to_the_cap(runtime, published):
    add_jobs(runtime, 1)
    waits = []
    for _ in range(6):
        make_due(runtime)
        before = utcnow()
        relay_once(runtime)
        waits.append(round((rows(runtime)["messages.deliver:msg_0"].due_at - before).total_seconds()))
    grace, cap = runtime.settings.relay_grace, runtime.settings.relay_backoff_max
    assert waits == [min(grace * 2**n, cap) for n in range(6)]
    assert rows(runtime)["messages.deliver:msg_0"].publishes == 6


def test_the_relay_takes_a_bounded_batch_per_pass(runtime, published):
    add_jobs(runtime, 12)
    make_due(runtime)
    assert relay_once(runtime, limit=5) == 5
    assert relay_once(runtime, limit=5) == 5
    assert relay_once(runtime, limit=5) == 2


def test_a_started_run_leases_its_job_until_any_claim_it_took_is_stale(runtime, published):
    add_jobs(runtime, 1)
    before = utcnow()
    jobs.lease(runtime, JOB, "msg_0")
    lease = (rows(runtime)["messages.deliver:msg_0"].due_at - before).total_seconds()
    settings = runtime.settings
    assert settings.claim_timeout + settings.relay_grace <= lease < settings.claim_timeout + settings.relay_grace + 1


def test_a_lease_never_brings_a_later_due_time_forward(runtime, published):
    add_jobs(runtime, 1, delay=3600)  # a retry an hour away
    due = rows(runtime)["messages.deliver:msg_0"].due_at
    jobs.lease(runtime, JOB, "msg_0")  # an early run (a redelivery) starts
    assert rows(runtime)["messages.deliver:msg_0"].due_at == due


def test_every_actor_run_leases_its_job_first(runtime, monkeypatch):
    leased = []
    monkeypatch.setattr(jobs, "lease", lambda runtime, job, *args: leased.append((job.name, args)))
    actor = runtime.broker.get_actor(DELIVER.name)
    with pytest.raises(LookupError):  # no such message: the run fails after leasing
        actor.fn("msg_missing")
    assert leased == [(DELIVER.name, ("msg_missing",))]


def test_a_delayed_job_waits_in_the_database_not_in_the_broker(runtime, published):
    add_jobs(runtime, 1, delay=60)
    assert published == []
    assert relay_once(runtime) == 0
    make_due(runtime)  # its time came
    assert relay_once(runtime) == 1 and published == [(JOB.name, ("msg_0",))]


def test_a_job_the_broker_refused_is_due_again_at_once(runtime):
    def refuse(actor, queue, args):
        raise ConnectionError("broker down")

    runtime.publisher.publish = refuse  # type: ignore[method-assign]
    add_jobs(runtime, 1)
    assert rows(runtime)["messages.deliver:msg_0"].due_at <= utcnow()  # the fast path failed
    assert relay_once(runtime) == 0
    assert rows(runtime)["messages.deliver:msg_0"].publishes == 0  # given back unchanged


def test_workers_fetch_ahead_as_configured(runtime):
    worker = InProcessWorker(runtime, threads=2)
    assert worker.worker.queue_prefetch == runtime.settings.worker_prefetch == 64


def test_a_dead_redis_workers_fetched_messages_return_to_the_head_of_the_queue(runtime, settings):
    from dramatiq import Message
    from dramatiq.brokers.redis import RedisBroker

    from ccm.brokers import build_broker

    if not isinstance(runtime.broker, RedisBroker):
        pytest.skip("the broker is not Redis")
    for number in range(3):
        runtime.publisher.publish(JOB.name, JOB.queue, [f"msg_{number}"])
    dead = build_broker(settings)  # another worker process: fetches, then dies without acking
    fetched = dead.do_fetch(JOB.queue, 2)
    assert len(fetched) == 2
    client, namespace = runtime.broker.client, settings.redis_namespace
    assert requeue_dead_workers(runtime.broker) == 0  # it is not silent for long enough yet
    client.zadd(f"{namespace}:__heartbeats__", {dead.broker_id: 0})
    assert requeue_dead_workers(runtime.broker) == 2
    ids = {Message.decode(body).options["redis_message_id"].encode() for body in fetched}
    assert set(client.lrange(f"{namespace}:{JOB.queue}", 0, 1)) == ids  # first in line again
    assert client.llen(f"{namespace}:{JOB.queue}") == 3
    assert not client.exists(f"{namespace}:__acks__.{dead.broker_id}.{JOB.queue}")
    assert client.zscore(f"{namespace}:__heartbeats__", dead.broker_id) is None


def test_healthz_reports_an_unreachable_broker(settings):
    from ccm.app import create_app
    from ccm.runtime import create_runtime
    from tests.support.processes import free_port

    if settings.resolved_broker_url is None:
        pytest.skip("the in-process broker is always there")
    scheme = "amqp://guest:guest@" if settings.resolved_broker_url.startswith("amqp") else "redis://"
    runtime = create_runtime(settings.model_copy(update={"broker_url": f"{scheme}127.0.0.1:{free_port()}/"}))
    try:
        response = create_app(runtime=runtime).test_client().get("/healthz")
    finally:
        runtime.close()
    assert response.status_code == 503
    assert response.json["database"] == "ok" and response.json["broker"].startswith("error: ")


def test_healthz_on_rabbitmq_reports_redis_too(app, settings):
    if not (settings.broker_url or "").startswith("amqp"):
        pytest.skip("the broker is not RabbitMQ")
    response = app.test_client().get("/healthz")
    assert response.json == {"status": "ok", "database": "ok", "broker": "ok", "redis": "ok"}


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"broker_url": "amqp://guest:guest@rabbit/"}, "CCM_BROKER_URL needs CCM_REDIS_URL"),
        ({"broker_url": "kafka://k:9092", "redis_url": "redis://r"}, "CCM_BROKER_URL: scheme 'kafka'"),
    ],
)
def test_broker_settings_that_cannot_work_are_refused(values, error, tmp_path):
    with pytest.raises(SettingsError, match=error):
        Settings.from_env(secret_key="x", data_dir=tmp_path, **values)


def test_the_broker_defaults_to_the_redis_url(tmp_path):
    settings = Settings.from_env(secret_key="x", data_dir=tmp_path, redis_url="redis://r:6379/0")
    assert settings.resolved_broker_url == "redis://r:6379/0" and not settings.embedded
