"""Test wiring.

The suite runs on the embedded default (SQLite, in-process broker) unless
``CCM_TEST_DATABASE_URL`` (PostgreSQL) and ``CCM_TEST_REDIS_URL`` are set, as ``.ci/run`` does.
Under ``CI=true`` both must be set and reachable, or the run fails. ``CCM_TEST_BROKER_URL``
(``amqp://…``) puts the Dramatiq broker on RabbitMQ, Redis keeping rate limits and tracking hits;
``.ci/run`` runs the delivery and fault tests a second time that way. CCM's queues there are
purged after each test, so give test runs a vhost of their own. The schema is always built by
running the Alembic migrations. Tables are emptied after each test (end-to-end tests need committed
rows that other threads and processes can see, so per-test rollback would not do).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from ccm.config import Settings
from tests.support import logger_registry
from tests.support.api import ApiClient
from tests.support.smtp_server import SmtpTestServer

logger_registry.install()

TEST_VARIABLES = ("CCM_TEST_", "CCM_SCREENSHOTS", "CCM_CHROMIUM")
"""Variables of the test run itself (the backends, tests/web/browser.py), not settings of CCM."""
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
"""``gw0``, ``gw1`` … when pytest-xdist runs the suite in several processes (``-n``), else None."""


def _per_worker(url: str | None) -> str | None:
    """Each xdist worker gets a database of its own (``test`` → ``test_gw1``) and a Redis namespace
    of its own (``ccm-test-gw1``): the tests of one worker never see another's rows, keys or jobs."""
    if not url or not WORKER:
        return url
    base, _, name = url.rpartition("/")
    return f"{base}/{name}_{WORKER}"


DATABASE_URL = _per_worker(os.environ.get("CCM_TEST_DATABASE_URL"))
REDIS_URL = os.environ.get("CCM_TEST_REDIS_URL")
REDIS_NAMESPACE = f"ccm-test-{WORKER}" if WORKER else "ccm-test"
BROKER_URL = os.environ.get("CCM_TEST_BROKER_URL")


def pytest_configure(config: pytest.Config) -> None:
    # A developer's own CCM_* settings must not leak into tests; CCM_SCREENSHOTS is the tests' own.
    for name in [n for n in os.environ if n.startswith("CCM_") and not n.startswith(TEST_VARIABLES)]:
        del os.environ[name]
    if IN_CI and not (DATABASE_URL and REDIS_URL):
        raise pytest.UsageError("CI=true needs CCM_TEST_DATABASE_URL and CCM_TEST_REDIS_URL (see .ci/run)")
    if BROKER_URL and not REDIS_URL:
        raise pytest.UsageError("CCM_TEST_BROKER_URL needs CCM_TEST_REDIS_URL (rate limits, tracking hits)")


SLOW_FIRST = ("tests/test_api_contract.py",)
"""Files that take minutes, run first: with a file per process at a time, a long file started last
would keep one process busy while the others sit idle."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.nodeid.split("::", 1)[0] not in SLOW_FIRST)


def pytest_report_header(config: pytest.Config) -> str:
    broker = "rabbitmq" if BROKER_URL and BROKER_URL.startswith("amqp") else "redis" if REDIS_URL else "stub"
    return f"ccm backends: database={'postgresql' if DATABASE_URL else 'sqlite'} broker={broker}"


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> Iterator[None]:
    """Fail any test that tries to reach beyond this machine."""
    original = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            if host not in ("127.0.0.1", "::1", "localhost") and not host.startswith("127."):
                raise AssertionError(f"test tried to connect to {address!r}: only loopback is allowed")
        return original(self, address)

    socket.socket.connect = guarded  # type: ignore[method-assign]
    yield
    socket.socket.connect = original  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated, empty database for the session."""
    from ccm.migrate import upgrade

    if DATABASE_URL:
        _reset_postgres(DATABASE_URL)
        url = DATABASE_URL
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'ccm.sqlite3'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def redis_url() -> str | None:
    if REDIS_URL:
        import redis

        redis.Redis.from_url(REDIS_URL).ping()
    return REDIS_URL


@pytest.fixture(scope="session")
def broker_url() -> str | None:
    """The RabbitMQ of ``CCM_TEST_BROKER_URL``, checked once (None: the broker is Redis or in-process)."""
    if BROKER_URL:
        import pika

        pika.BlockingConnection(pika.URLParameters(BROKER_URL)).close()
    return BROKER_URL


@pytest.fixture
def settings(
    request: pytest.FixtureRequest, database_url: str, redis_url: str | None, broker_url: str | None, tmp_path: Path
) -> Settings:
    """Test settings; ``@pytest.mark.settings(name=value)`` overrides fields, and a test that uses
    the ``smtp_server`` fixture sends email to it."""
    overrides: dict[str, Any] = {}
    if "smtp_server" in request.fixturenames:
        overrides["smtp_url"] = request.getfixturevalue("smtp_server").url()
    marker = request.node.get_closest_marker("settings")
    if marker:
        overrides.update(marker.kwargs)
    return make_settings(database_url, redis_url, tmp_path, broker_url=broker_url, **overrides)


@pytest.fixture
def smtp_server() -> Iterator[SmtpTestServer]:
    """A real SMTP server on loopback that records what it receives."""
    with SmtpTestServer() as server:
        yield server


def make_settings(
    database_url: str, redis_url: str | None, data_dir: Path, *, broker_url: str | None = BROKER_URL, **overrides: Any
) -> Settings:
    values: dict[str, Any] = dict(
        database_url=database_url,
        redis_url=redis_url,
        broker_url=broker_url,
        redis_namespace=REDIS_NAMESPACE,
        data_dir=data_dir,
        secret_key="test-secret",
        public_url="http://ccm.test",
        local_outbox="email",
        relay_interval=0.2,
        relay_grace=2.0,
        relay_backoff_max=30.0,
        broker_heartbeat_timeout=2.0,
        claim_timeout=3.0,
        smtp_timeout=1.0,
        render_timeout=1.0,
        retry_base=0.2,
        retry_max=2.0,
        in_process_worker_threads=2,
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Any]:
    from ccm.runtime import create_runtime
    from ccm.worker import install

    runtime = create_runtime(settings)
    install(runtime)
    yield runtime
    runtime.close()
    _empty_tables(settings)
    _flush_redis(settings)
    purge_rabbitmq(settings)


@pytest.fixture
def app(runtime: Any) -> Any:
    from ccm.app import create_app

    app = create_app(runtime=runtime)
    app.testing = True
    return app


TEST_POSTAL_ADDRESS = "Acme Test Inc., 1 Test Street, Springfield, IL 62701, USA"


@pytest.fixture
def workspace(runtime: Any) -> tuple[str, str]:
    """(workspace id, API key) of a fresh workspace, with the postal address marketing email needs
    (tests about a workspace without one remove it)."""
    from ccm.auth.service import create_api_key
    from ccm.workspaces.service import get_or_create_workspace

    with runtime.db.unit_of_work() as session:
        ws, _ = get_or_create_workspace(session=session, name="acme")
        ws.settings = {**(ws.settings or {}), "postal_address": TEST_POSTAL_ADDRESS}
        _, token = create_api_key(session=session, workspace_id=ws.id)
    return ws.id, token


@pytest.fixture
def live_server(app: Any) -> Iterator[str]:
    """The app served on loopback, for real clients (the Segment libraries) to call."""
    from tests.support.http_server import serving

    with serving(app) as url:
        yield url


@pytest.fixture
def write_key(runtime: Any, workspace: tuple[str, str]) -> str:
    """A write key of the workspace (it may only send events to the tracking API)."""
    from ccm.auth.models import ApiKeyRole
    from ccm.auth.service import create_api_key

    with runtime.db.unit_of_work() as session:
        _, token = create_api_key(session=session, workspace_id=workspace[0], name="web", role=ApiKeyRole.WRITE)
    return token


@pytest.fixture
def api(app: Any, workspace: tuple[str, str]) -> ApiClient:
    return ApiClient(app.test_client(), workspace[1])


@pytest.fixture
def worker(runtime: Any) -> Iterator[Any]:
    """A real Dramatiq worker (and the relay) consuming the runtime's broker in this process."""
    from ccm.worker import InProcessWorker

    worker = InProcessWorker(runtime, threads=2)
    worker.start()
    yield worker
    worker.stop()


def _reset_postgres(url: str) -> None:
    if WORKER:  # the worker's own database, made on the first run next to the one named
        base, _, name = url.rpartition("/")
        admin = create_engine(f"{base}/{name.removesuffix('_' + WORKER)}", isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            if connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is None:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def _empty_tables(settings: Settings) -> None:
    from ccm.models import metadata

    engine = create_engine(settings.resolved_database_url)
    tables = [table.name for table in reversed(metadata.sorted_tables)]
    with engine.begin() as connection:
        # The audit log's triggers refuse deletes (it is append-only): the cleanup between tests
        # is the one writer allowed past them.
        if engine.dialect.name == "postgresql":
            connection.execute(text("SET LOCAL session_replication_role = replica"))
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            triggers = connection.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")).all()
            for name, _ in triggers:
                connection.execute(text(f"DROP TRIGGER {name}"))
            for table in tables:
                connection.execute(text(f"DELETE FROM {table}"))
            for _, sql in triggers:
                connection.execute(text(sql))
    engine.dispose()


def _flush_redis(settings: Settings) -> None:
    if settings.redis_url:
        import redis

        client = redis.Redis.from_url(settings.redis_url)
        keys = list(client.scan_iter(f"{settings.redis_namespace}*"))
        if keys:
            client.delete(*keys)


def purge_rabbitmq(settings: Settings) -> None:
    """Drop every message from CCM's queues (and their delay and dead-letter queues) on RabbitMQ."""
    url = settings.resolved_broker_url
    if not url or not url.startswith("amqp"):
        return
    import pika
    import pika.exceptions

    from ccm.brokers import QUEUES

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for name in (f"{queue}{suffix}" for queue in QUEUES for suffix in ("", ".DQ", ".XQ")):
            try:
                channel.queue_purge(name)
            except pika.exceptions.ChannelClosedByBroker:  # never declared: nothing to purge
                channel = connection.channel()
    finally:
        connection.close()
