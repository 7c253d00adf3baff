"""``commit_then``: what a caller does "the instant the COMMIT left" runs before the answer is read on
PostgreSQL (after the commit elsewhere), the transaction commits, and the connection goes back
to the pool usable; a COMMIT the database refuses is reported after ``then`` ran."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg import pq
from sqlalchemy import text

from ccm.db import Database
from ccm.db_commit import CommitUnconfirmed, commit_then


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


def _ids(db: Database) -> list[int]:
    with db.read_only() as session:
        return list(session.execute(text("SELECT id FROM commit_probe ORDER BY id")).scalars())


def _status(session) -> int | None:
    dbapi = session.connection().connection.dbapi_connection
    return dbapi.pgconn.transaction_status if hasattr(dbapi, "pgconn") else None


def test_then_runs_once_the_commit_is_sent_and_the_row_is_kept(db):
    seen = []
    with db.unit_of_work() as session:
        session.execute(text("INSERT INTO commit_probe (id) VALUES (1)"))
        commit_then(session, lambda: seen.append(_status(session)))
    if db.is_sqlite:
        assert seen == [None]
    else:  # the COMMIT is on its way, its answer not read yet
        assert seen == [pq.TransactionStatus.ACTIVE]
    assert _ids(db) == [1]
    for n in (2, 3):  # the pooled connection is reused as if committed the usual way
        with db.unit_of_work() as session:
            session.execute(text("INSERT INTO commit_probe (id) VALUES (:n)"), {"n": n})
    assert _ids(db) == [1, 2, 3]


def test_a_commit_the_database_refuses_is_reported_after_then_and_keeps_nothing(db):
    if db.is_sqlite:
        pytest.skip("SQLite commits before then(): there is no answer to wait for")
    with db.unit_of_work() as session:
        session.execute(
            text(
                "CREATE TABLE commit_probe_ref (id INTEGER PRIMARY KEY,"
                " probe INTEGER REFERENCES commit_probe (id) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    ran = []
    with pytest.raises(CommitUnconfirmed, match="foreign key"), db.unit_of_work() as session:
        session.execute(text("INSERT INTO commit_probe (id) VALUES (7)"))
        session.execute(text("INSERT INTO commit_probe_ref (id, probe) VALUES (1, 99)"))  # checked at COMMIT
        commit_then(session, lambda: ran.append(True))
    assert ran == [True]
    assert _ids(db) == []
    with db.unit_of_work() as session:
        session.execute(text("INSERT INTO commit_probe (id) VALUES (8)"))
    assert _ids(db) == [8]


def test_an_error_before_the_commit_runs_nothing_and_keeps_nothing(db):
    ran = []
    with pytest.raises(Exception, match="(?i)unique|duplicate"), db.unit_of_work() as session:
        session.execute(text("INSERT INTO commit_probe (id) VALUES (1)"))
        session.execute(text("INSERT INTO commit_probe (id) VALUES (1)"))
        commit_then(session, lambda: ran.append(True))
    assert ran == []
    assert _ids(db) == []
