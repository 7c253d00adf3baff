"""A key's last use: shown in the key list once the key authenticated a request, written at most
once a minute per key (not once per request, not even when the write failed), and never a reason
for a request to fail."""

from __future__ import annotations

import contextlib
import datetime as dt
import time

from sqlalchemy import create_engine, event, select, text, update

from ccm.auth.models import ApiKey, ApiKeyRole
from ccm.db import utcnow
from tests.auth.test_api_keys import make_key
from tests.support.api import ApiClient

TRACK = {"type": "track", "userId": "u1", "event": "Signed Up"}


def last_used(runtime, token_prefix):
    with runtime.db.unit_of_work() as session:
        return session.scalar(select(ApiKey.last_used_at).where(ApiKey.prefix == token_prefix))


@contextlib.contextmanager
def key_writes(runtime):
    """The UPDATEs of ``api_key`` the application sends while the block runs."""
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("UPDATE API_KEY"):
            seen.append(statement)

    event.listen(runtime.db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", count)


def test_the_key_list_shows_when_each_key_was_last_used(api, app, runtime, workspace):
    new = api.post("/v1/api-keys", json={"name": "backend"}).json
    listed = {k["id"]: k for k in api.get("/v1/api-keys").json["items"]}
    assert listed[new["id"]]["last_used_at"] is None
    before = utcnow()
    assert ApiClient(app.test_client(), new["token"]).get("/v1/profiles").status_code == 200
    listed = {k["id"]: k for k in api.get("/v1/api-keys").json["items"]}
    used = dt.datetime.fromisoformat(listed[new["id"]]["last_used_at"])
    assert before - dt.timedelta(seconds=1) <= used <= utcnow()


def test_a_write_key_sending_events_is_marked_used(app, runtime, write_key):
    assert last_used(runtime, write_key[:12]) is None
    answer = app.test_client().post("/v1/track", json=TRACK, headers={"Authorization": f"Bearer {write_key}"})
    assert answer.status_code == 200, answer.json
    assert last_used(runtime, write_key[:12]) is not None


def test_uses_within_a_minute_write_the_key_once(app, runtime, workspace):
    token = make_key(runtime, workspace[0], ApiKeyRole.STANDARD)
    client = ApiClient(app.test_client(), token)
    with key_writes(runtime) as writes:
        for _ in range(5):
            assert client.get("/v1/profiles").status_code == 200
    first = last_used(runtime, token[:12])
    assert len(writes) == 1 and first is not None
    with key_writes(runtime) as writes:
        assert client.put("/v1/profiles/u1", json={"email": "u1@example.com"}).status_code in (200, 201)
    assert writes == [] and last_used(runtime, token[:12]) == first


def test_a_use_more_than_a_minute_after_the_last_one_is_written(app, runtime, workspace):
    token = make_key(runtime, workspace[0], ApiKeyRole.STANDARD)
    long_ago = utcnow() - dt.timedelta(minutes=2)
    with runtime.db.unit_of_work() as session:
        session.execute(update(ApiKey).where(ApiKey.prefix == token[:12]).values(last_used_at=long_ago))
    assert ApiClient(app.test_client(), token).get("/v1/profiles").status_code == 200
    assert last_used(runtime, token[:12]) > long_ago + dt.timedelta(seconds=60)


def test_a_request_succeeds_when_its_key_cannot_be_written(app, runtime, settings, workspace):
    """Another transaction holds the lock the write needs: the write gives up within its timeout,
    the request is answered all the same, and the key stays as it was."""
    token = make_key(runtime, workspace[0], ApiKeyRole.STANDARD)
    blocker = create_engine(settings.database_url)
    try:
        with blocker.connect() as connection:
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")  # the database's write lock
            else:
                connection.execute(text("BEGIN"))
                connection.execute(text("SELECT 1 FROM api_key WHERE prefix = :p FOR UPDATE"), {"p": token[:12]})
            started = time.monotonic()
            answer = ApiClient(app.test_client(), token).get("/v1/profiles")
            took = time.monotonic() - started
            connection.exec_driver_sql("ROLLBACK")
    finally:
        blocker.dispose()
    assert answer.status_code == 200 and took < 5
    assert last_used(runtime, token[:12]) is None
    with key_writes(runtime) as writes:  # this process tried within the minute: it does not retry at once
        assert ApiClient(app.test_client(), token).get("/v1/profiles").status_code == 200
    assert writes == []
