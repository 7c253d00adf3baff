"""Crashes and outages with real processes: a Dramatiq worker SIGKILLed at the worst moments,
the broker down when the API is called or losing what it held, ``ccm serve`` killed
mid-delivery. Whatever happens, every accepted message ends in a terminal state and the SMTP
server receives it at most once — and exactly once whenever it cannot have been handed over
before the crash. Runs on Redis, and on RabbitMQ with ``CCM_TEST_BROKER_URL``."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ccm.jobs import PendingJob
from ccm.messages.models import Message
from tests.conftest import BROKER_URL, IN_CI, REDIS_URL, purge_rabbitmq
from tests.messages.test_send_api import finished, send
from tests.support.api import ApiClient, wait_for
from tests.support.factories import publish_template, put_profile
from tests.support.processes import RedisServer, ServeProcess, ccm_env, free_port, start_workers

needs_redis = pytest.mark.skipif(not REDIS_URL and not IN_CI, reason="needs CCM_TEST_REDIS_URL (Redis)")
redis_broker_only = pytest.mark.skipif(bool(BROKER_URL), reason="about Redis as the broker")
pytestmark = pytest.mark.e2e


def worker_env(settings, smtp_server, **overrides):
    values = dict(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        broker_url=settings.broker_url,
        redis_namespace=settings.redis_namespace,
        smtp_url=smtp_server.url(),
        secret_key="test-secret",
        public_url="http://ccm.test",
        claim_timeout=2,
        smtp_timeout=0.8,
        render_timeout=0.8,
        relay_grace=1,
        relay_interval=0.2,
        broker_heartbeat_timeout=2,
        retry_base=0.2,
        retry_max=1,
    )
    values.update(overrides)
    return ccm_env(**values)


def lose_queued_messages(settings):
    """What a broker restarted empty leaves: no message in CCM's queues."""
    purge_rabbitmq(settings)
    if not (settings.broker_url or "").startswith("amqp"):
        import redis

        client = redis.Redis.from_url(settings.resolved_broker_url)
        client.delete(*client.keys(f"{settings.redis_namespace}:*"))


def message_row(runtime, message_id):
    with runtime.db.unit_of_work() as session:
        return session.get(Message, message_id)


@needs_redis
def test_worker_killed_between_claim_and_send_sends_once(api, runtime, settings, smtp_server, tmp_path):
    publish_template(api)
    put_profile(api, "u1")
    message_id = send(api).json["id"]
    crashing = start_workers(worker_env(settings, smtp_server, crash_at="after_claim"), tmp_path / "crash.log")
    try:
        wait_for(lambda: message_row(runtime, message_id).claims >= 1, timeout=30, message="the first claim")
    finally:
        crashing.kill()
    assert message_row(runtime, message_id).status == "sending"
    assert smtp_server.messages == []

    healthy = start_workers(worker_env(settings, smtp_server), tmp_path / "healthy.log")
    try:
        message = finished(api, message_id, timeout=30)
    finally:
        healthy.stop()
    assert message["status"] == "sent", message
    assert len(smtp_server.messages) == 1
    assert [a["outcome"] for a in message["attempts"]] == ["sent"]


@needs_redis
def test_worker_killed_after_the_smtp_server_accepted_does_not_send_again(
    api, runtime, settings, smtp_server, tmp_path
):
    publish_template(api)
    put_profile(api, "u1")
    message_id = send(api).json["id"]
    crashing = start_workers(worker_env(settings, smtp_server, crash_at="after_send"), tmp_path / "crash.log")
    try:
        wait_for(lambda: smtp_server.messages, timeout=30, message="the SMTP server to receive the message")
        wait_for(lambda: not crashing.alive() or message_row(runtime, message_id).status == "sending", timeout=5)
    finally:
        crashing.kill()

    healthy = start_workers(worker_env(settings, smtp_server), tmp_path / "healthy.log")
    try:
        message = finished(api, message_id, timeout=30)
    finally:
        healthy.stop()
    assert message["status"] == "sent"
    assert message["reason"].startswith("outcome_unknown")
    assert [a["outcome"] for a in message["attempts"]] == ["unknown"]
    assert len(smtp_server.messages) == 1


@needs_redis
def test_queued_work_the_broker_lost_is_published_again_and_sent_once(api, runtime, settings, smtp_server, tmp_path):
    publish_template(api)
    put_profile(api, "u1")
    message_ids = [send(api).json["id"] for _ in range(5)]
    lose_queued_messages(settings)
    worker = start_workers(worker_env(settings, smtp_server), tmp_path / "worker.log")
    try:
        messages = [finished(api, message_id, timeout=30) for message_id in message_ids]
    finally:
        worker.stop()
    assert {message["status"] for message in messages} == {"sent"}
    assert len(smtp_server.messages) == 5


@needs_redis
def test_broker_unreachable_when_the_api_is_called_then_the_relay_publishes(
    api, runtime, settings, smtp_server, tmp_path, database_url
):
    from ccm.app import create_app
    from ccm.runtime import create_runtime

    scheme = "amqp://guest:guest@" if (settings.broker_url or "").startswith("amqp") else "redis://"
    down = create_runtime(settings.model_copy(update={"broker_url": f"{scheme}127.0.0.1:{free_port()}/"}))
    try:
        publish_template(api)
        put_profile(api, "u1")
        client = ApiClient(create_app(runtime=down).test_client(), api.key)
        accepted = send(client)
        assert accepted.status_code == 202
    finally:
        down.close()
    worker = start_workers(worker_env(settings, smtp_server), tmp_path / "worker.log")
    try:
        message = finished(api, accepted.json["id"], timeout=30)
    finally:
        worker.stop()
    assert message["status"] == "sent"
    assert len(smtp_server.messages) == 1


@needs_redis
@redis_broker_only
def test_redis_down_when_the_api_is_called_then_delivered_once_it_is_back(database_url, tmp_path, smtp_server):
    if not RedisServer.available():
        pytest.skip("redis-server is not installed")
    from ccm.app import create_app
    from ccm.auth.service import create_api_key
    from ccm.runtime import create_runtime
    from ccm.workspaces.service import get_or_create_workspace
    from tests.conftest import _empty_tables, make_settings

    redis = RedisServer()
    redis.start()
    settings = make_settings(database_url, redis.url, tmp_path, broker_url=None, smtp_url=smtp_server.url())
    runtime = create_runtime(settings)
    with runtime.db.unit_of_work() as session:
        ws, _ = get_or_create_workspace(session=session, name="acme")
        _, key = create_api_key(session=session, workspace_id=ws.id)
    api = ApiClient(create_app(runtime=runtime).test_client(), key)
    worker = start_workers(worker_env(settings, smtp_server), tmp_path / "worker.log")
    try:
        publish_template(api)
        put_profile(api, "u1")
        redis.stop()
        accepted = send(api)
        assert accepted.status_code == 202
        with runtime.db.unit_of_work() as session:
            assert session.scalar(select(PendingJob.key)) == f"messages.deliver:{accepted.json['id']}"
        assert api.get(f"/v1/messages/{accepted.json['id']}").json["status"] == "queued"
        assert smtp_server.messages == []

        redis.start()  # empty: whatever was published before is gone too
        message = finished(api, accepted.json["id"], timeout=45)
        assert message["status"] == "sent"
        assert len(smtp_server.messages) == 1
    finally:
        worker.stop()
        redis.stop()
        runtime.close()
        _empty_tables(settings)


def test_embedded_serve_killed_mid_delivery_delivers_once_after_restart(tmp_path, smtp_server):
    env = ccm_env(
        data_dir=tmp_path / "data",
        smtp_url=smtp_server.url(),
        claim_timeout=2,
        smtp_timeout=0.8,
        render_timeout=0.8,
        relay_grace=1,
        relay_interval=0.2,
        crash_at="after_claim",
    )
    crashing = ServeProcess(env, tmp_path / "serve1.log")
    client = ApiClient(HttpClient(crashing.url), crashing.key)
    publish_template(client)
    put_profile(client, "u1")
    message_id = send(client).json["id"]
    crashing.wait_exit(timeout=30)  # the in-process worker claimed it and the process died
    crashing.kill()
    assert smtp_server.messages == []

    env.pop("CCM_CRASH_AT")
    restarted = ServeProcess(env, tmp_path / "serve2.log")
    try:
        client = ApiClient(HttpClient(restarted.url), restarted.key)
        message = finished(client, message_id, timeout=30)
    finally:
        restarted.stop()
    assert message["status"] == "sent"
    assert len(smtp_server.messages) == 1


class HttpClient:
    """The subset of Flask's test client that ApiClient uses, over real HTTP."""

    def __init__(self, base_url):
        self.base_url = base_url

    def open(self, path, method, json=None, headers=None, data=None):
        import json as jsonlib
        import urllib.error
        import urllib.request

        body = jsonlib.dumps(json).encode() if json is not None else data
        request = urllib.request.Request(
            self.base_url + path,
            data=body,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return HttpResponse(response.status, response.read(), dict(response.headers))
        except urllib.error.HTTPError as error:
            return HttpResponse(error.code, error.read(), dict(error.headers))


class HttpResponse:
    def __init__(self, status_code, content, headers):
        import json as jsonlib

        self.status_code, self.headers = status_code, headers
        self.json = jsonlib.loads(content) if content else None
