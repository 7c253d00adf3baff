"""Production mode: the API under gunicorn on the real schema, the Redis policy check, and a
docker-compose.yml that runs the very commands the README documents."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import IN_CI
from tests.support.api import ApiClient
from tests.support.factories import publish_template, put_profile
from tests.support.processes import Process, RedisServer, ccm_env, free_port

ROOT = Path(__file__).resolve().parents[1]


def test_api_runs_under_gunicorn_on_the_migrated_schema(settings, workspace, tmp_path):
    from tests.messages.test_faults import HttpClient
    from tests.support.api import wait_for

    port = free_port()
    env = ccm_env(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        secret_key="test-secret",
        redis_namespace=settings.redis_namespace,
        data_dir=tmp_path,
    )
    server = Process(
        [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}", "ccm.wsgi:app"],
        env,
        tmp_path / "gunicorn.log",
    )
    try:
        api = ApiClient(HttpClient(f"http://127.0.0.1:{port}"), workspace[1])
        wait_for(lambda: _answers(api), timeout=30, message=f"gunicorn to serve:\n{server.output()}")
        publish_template(api)
        put_profile(api, "u1")
        accepted = api.post(
            "/v1/messages",
            json={"to": {"external_id": "u1"}, "template": "welcome"},
            headers={"Idempotency-Key": "gunicorn-1"},
        )
        assert accepted.status_code == 202
        assert api.get(f"/v1/messages/{accepted.json['id']}").json["status"] == "queued"  # no worker here
    finally:
        server.stop()


def _answers(api):
    try:
        return api.get("/healthz").status_code == 200
    except OSError:
        return False


def test_workers_refuse_a_redis_that_may_evict_keys():
    if not RedisServer.available():
        if IN_CI:
            raise AssertionError("redis-server is needed")
        pytest.skip("redis-server is not installed")
    from ccm.config import Settings
    from ccm.jobs import build_broker, check_redis_policy

    redis = RedisServer(policy="allkeys-lru")
    redis.start()
    try:
        broker = build_broker(Settings(redis_url=redis.url, secret_key="x"))
        with pytest.raises(RuntimeError, match="noeviction"):
            check_redis_policy(broker)
    finally:
        redis.stop()


def test_compose_runs_the_documented_commands():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= {"postgres", "redis", "api", "worker", "mailsink"}
    readme = (ROOT / "README.md").read_text()
    assert services["migrate"]["command"] == ["ccm", "db", "upgrade"] and "ccm db upgrade" in readme
    api, worker = " ".join(services["api"]["command"]), " ".join(services["worker"]["command"])
    assert api.startswith("gunicorn") and "ccm.wsgi:app" in api and "'ccm.wsgi:app'" in readme
    assert worker.startswith("dramatiq workers") and "dramatiq workers --processes" in readme
    assert "noeviction" in " ".join(services["redis"]["command"])
    env = services["api"]["environment"]
    assert {"CCM_DATABASE_URL", "CCM_REDIS_URL", "CCM_SMTP_URL", "CCM_SECRET_KEY"} <= set(env)
