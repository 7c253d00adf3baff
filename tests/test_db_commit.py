"""``commit_writing``: the writes leave with the ``COMMIT`` (after the commit on SQLite), the
transaction commits, and the connection goes back to the pool usable, whichever way the
``COMMIT`` went (in one system call with the writes, or through libpq right before them); a
``COMMIT`` the database refuses is reported after the writes were made. Then the guarantee
itself: a process SIGKILLed over and over while it commits rows and writes each row's id on
several sockets leaves every committed id on every socket and no other id on any."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from ccm import socket_writes
from ccm.db import Database
from ccm.db_commit import CommitUnconfirmed, commit_writing
from tests.support import commit_kills


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    with database.unit_of_work() as session:
        session.execute(text("CREATE TABLE commit_probe (id INTEGER PRIMARY KEY)"))
    yield database
    with database.unit_of_work() as session:
        session.execute(text("DROP TABLE IF EXISTS commit_probe_ref"))
        session.execute(text("DROP TABLE commit_probe"))
    database.dispose()


@pytest.fixture(params=["one system call", "libpq, then the writes"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "one system call":
        if socket_writes.io_uring_unavailable():
            pytest.skip(f"io_uring is not available here: {socket_writes.io_uring_unavailable()}")
    else:
        monkeypatch.setattr(socket_writes, "USE_IO_URING", False)
    return str(request.param)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected loopback TCP pair: (ours, the peer's)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        ours = socket.create_connection(server.getsockname())
        theirs, _ = server.accept()
    with ours, theirs:
        theirs.settimeout(5)
        yield ours, theirs


def _ids(db: Database) -> list[int]:
    with db.read_only() as session:
        return list(session.execute(text("SELECT id FROM commit_probe ORDER BY id")).scalars())


def test_the_writes_leave_with_the_commit_and_the_row_is_kept(db, way, pair):
    ours, theirs = pair
    ran = []
    with db.unit_of_work() as session:
        session.execute(text("INSERT INTO commit_probe (id) VALUES (1)"))
        session.info.setdefault("after_commit", []).append(lambda: ran.append("after commit"))
        failed = commit_writing(session, [(ours, b"one\r\n"), (ours, b"two\r\n")])
    assert failed == {}
    assert theirs.recv(100) == b"one\r\ntwo\r\n"
    assert ran == ["after commit"]
    assert _ids(db) == [1]
    for n in (2, 3):  # the pooled connection is reused as if committed the usual way
        with db.unit_of_work() as session:
            session.execute(text("INSERT INTO commit_probe (id) VALUES (:n)"), {"n": n})
    assert _ids(db) == [1, 2, 3]


def test_a_write_that_fails_is_reported_by_position_and_the_others_are_made(db, way, pair):
    ours, theirs = pair
    with db.unit_of_work() as session:
        session.execute(text("INSERT INTO commit_probe (id) VALUES (1)"))
        failed = commit_writing(session, [(ours, b"one"), (None, b"gone"), (ours, b"two")])
    assert list(failed) == [1]
    assert theirs.recv(100) == b"onetwo"
    assert _ids(db) == [1]


def test_a_commit_the_database_refuses_is_reported_after_the_writes_and_keeps_nothing(db, way, pair):
    if db.is_sqlite:
        pytest.skip("SQLite commits before the writes: there is no answer to wait for")
    ours, theirs = pair
    with db.unit_of_work() as session:
        session.execute(
            text(
                "CREATE TABLE commit_probe_ref (id INTEGER PRIMARY KEY,"
                " probe INTEGER REFERENCES commit_probe (id) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    with pytest.raises(CommitUnconfirmed, match="foreign key") as refused, db.unit_of_work() as session:
        session.execute(text("INSERT INTO commit_probe (id) VALUES (7)"))
        session.execute(text("INSERT INTO commit_probe_ref (id, probe) VALUES (1, 99)"))  # checked at COMMIT
        commit_writing(session, [(ours, b"dot")])
    assert refused.value.write_failures == {}
    assert theirs.recv(100) == b"dot"
    assert _ids(db) == []
    with db.unit_of_work() as session:
        session.execute(text("INSERT INTO commit_probe (id) VALUES (8)"))
    assert _ids(db) == [8]


def test_an_error_before_the_commit_writes_nothing_and_keeps_nothing(db, way, pair):
    ours, theirs = pair
    with pytest.raises(Exception, match="(?i)unique|duplicate"), db.unit_of_work() as session:
        session.execute(text("INSERT INTO commit_probe (id) VALUES (1)"))
        session.execute(text("INSERT INTO commit_probe (id) VALUES (1)"))
        commit_writing(session, [(ours, b"dot")])
    ours.close()
    assert theirs.recv(100) == b""
    assert _ids(db) == []


# The guarantee, under SIGKILL (tests/support/commit_kills.py).

ROUNDS = 12


@pytest.mark.e2e
def test_a_sigkill_never_falls_between_the_commit_and_the_writes(db, database_url):
    if db.is_sqlite:
        pytest.skip("SQLite commits before the writes: no COMMIT on the wire to pair them with")
    if socket_writes.io_uring_unavailable():
        pytest.skip(f"io_uring is not available here: {socket_writes.io_uring_unavailable()}")
    runs = commit_kills.kill_rounds(db, database_url, ROUNDS, joint=True)
    assert all(run.committed > 10 for run in runs)  # each child committed rows before its kill
    assert [run.torn for run in runs] == [[]] * ROUNDS
