"""Database wiring: the declarative base, column types, and the unit of work.

Services ``flush()`` when they need ids and never ``commit()``. The request wrapper
(:mod:`ccm.app`) and the actor wrapper (:mod:`ccm.jobs`) own the transaction: they commit once and
then run the callbacks registered with :func:`after_commit` (publishing jobs, for instance), or roll
back and drop them.

Work that only reads takes a read-only session (:meth:`Database.read_only`, and GET requests): it
never holds a write lock, so nothing slow done beside it (a render, a network call) can block a
writer. Slow work never runs inside a write transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Insert,
    MetaData,
    Table,
    TextClause,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import CursorResult, Engine, Result
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset, so store naive UTC)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    __table__: ClassVar[Table]  # every model maps one plain Table (SQLAlchemy types it as any FromClause)
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSONType, list[Any]: JSONType, dt.datetime: UTCDateTime}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def after_commit(session: Session, callback: Callable[[], object]) -> None:
    """Run ``callback`` once the current transaction has committed; drop it on rollback (what it
    returns is ignored)."""
    session.info.setdefault("after_commit", []).append(callback)


def commit(session: Session) -> None:
    """Commit, then run the after-commit callbacks. A failing callback is logged, not raised:
    the transaction is already durable and every callback has a recovery path (the job relay)."""
    session.commit()
    for callback in session.info.pop("after_commit", []):
        try:
            callback()
        except Exception:
            log.exception("after-commit callback %r failed", callback)


def end_transaction(session: Session) -> None:
    """Commit now, before slow work that needs no database (a render, a network call), so that
    the session holds no lock meanwhile; it begins a new transaction only if used again. For a unit
    of work that has nothing left to write."""
    commit(session)


def rollback(session: Session) -> None:
    session.info.pop("after_commit", None)
    session.rollback()


@functools.cache
def insert_ignoring_conflicts(dialect: str, table: Table, returning: Column[Any] | None = None) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING [RETURNING column]`` for a dialect (``postgresql`` or
    ``sqlite``), built once: execute it with the row as parameters."""
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table).on_conflict_do_nothing()
    return statement.returning(returning) if returning is not None else statement


def insert_many(
    connection: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    returning: str | None = None,
    *,
    ignoring: bool = True,
) -> Result[Any]:
    """``INSERT … [ON CONFLICT DO NOTHING] [RETURNING returning]`` of many rows in one statement.
    On PostgreSQL the rows travel as one JSON parameter (``jsonb_populate_recordset``): one
    prepared statement whatever the count, instead of a statement with one parameter per value
    that the driver parses again on every call. SQLite gets a multi-row ``VALUES``."""
    if connection.dialect.name != "postgresql":
        column = table.c[returning] if returning else None
        statement = insert_ignoring_conflicts("sqlite", table, column) if ignoring else table.insert()
        return connection.execute(statement, rows)
    many = _pg_insert_many(table.name, tuple(rows[0]), returning, ignoring)
    return connection.execute(many, {"rows": json.dumps(rows, default=_json_value, separators=(",", ":"))})


@functools.cache
def _pg_insert_many(table: str, columns: tuple[str, ...], returning: str | None, ignoring: bool) -> TextClause:
    names = ", ".join(columns)
    rows = f"jsonb_populate_recordset(CAST(NULL AS {table}), CAST(:rows AS JSONB))"
    sql = f"INSERT INTO {table} ({names}) SELECT {names} FROM {rows}"
    sql += " ON CONFLICT DO NOTHING" if ignoring else ""
    sql += f" RETURNING {returning}" if returning else ""
    return text(sql)


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):  # the columns hold naive UTC (see UTCDateTime)
        return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in a batch row")


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched. ``Session.execute`` is typed to return a plain
    ``Result``; for those statements it is a ``CursorResult``, which has the count."""
    assert isinstance(result, CursorResult), f"{type(result).__name__} has no rowcount"
    return result.rowcount


def dialect_of(session: Session) -> str:
    return session.get_bind().dialect.name


READ_ONLY = "ccm_read_only"
"""The execution option (and SQLite connection flag) of read-only sessions."""


class Database:
    """An engine and a session factory for one database URL."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = _create_engine(url, echo=echo)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self.read_only_sessionmaker = sessionmaker(_read_only(self.engine), expire_on_commit=False)
        """Sessions that only read: no write lock on SQLite, ``READ ONLY`` on PostgreSQL; a write fails."""

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """A session committed (with after-commit callbacks) on success, rolled back on error."""
        session = self.sessionmaker()
        try:
            yield session
            commit(session)
        except BaseException:
            rollback(session)
            raise
        finally:
            session.close()

    @contextmanager
    def read_only(self) -> Iterator[Session]:
        """A session for reads only, ended when the block ends. It takes no write lock (on SQLite
        it begins DEFERRED, and WAL readers never block the writer) and refuses writes."""
        with self.read_only_sessionmaker() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def _create_engine(url: str, *, echo: bool) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(
        url, echo=echo, pool_size=10, max_overflow=20, pool_recycle=1800, json_deserializer=_load_jsonb
    )


def _load_jsonb(text: str | bytes) -> Any:
    """JSON from PostgreSQL. JSONB keeps numbers as decimals without exponent (``1.5e308`` comes
    back as 309 digits); CCM accepts no integer beyond 64 bits, so such a number was a float."""
    # One decoder for every value: json.loads with an argument builds a decoder per call, which
    # cost more than decoding the small values a delivery reads (eight a message).
    return _JSONB_DECODER.decode(text.decode() if isinstance(text, bytes) else text)


def _int_or_float(digits: str) -> int | float:
    return int(digits) if len(digits.lstrip("-")) <= 19 else float(digits)


_JSONB_DECODER = json.JSONDecoder(parse_int=_int_or_float)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's implicit BEGIN is deferred).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()
    # PostgreSQL has sha256(); segments match suppression entries by their address hash in SQL.
    dbapi_connection.create_function("ccm_sha256", 1, _sha256_hex, deterministic=True)
    # PostgreSQL has hashtext(); a campaign splits its audience into variants by a hash in SQL.
    dbapi_connection.create_function("ccm_crc32", 1, _crc32, deterministic=True)


def _crc32(value: str | None) -> int | None:
    return None if value is None else zlib.crc32(value.encode())


def _sha256_hex(value: str | None) -> str | None:
    return None if value is None else hashlib.sha256(value.encode()).hexdigest()


def _read_only(engine: Engine) -> Engine:
    options: dict[str, Any] = {READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options["postgresql_readonly"] = True  # reset when the connection goes back to the pool
    return engine.execution_options(**options)


def _sqlite_on_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front. A deferred transaction that reads and then writes
    # fails with SQLITE_BUSY when another writer committed in between, and busy_timeout cannot help.
    # So a deferred transaction is only for a read-only session, and query_only makes sure of it
    # (a connection setting: flipped only when the pooled connection changes role).
    read_only = bool(connection.get_execution_options().get(READ_ONLY))
    if connection.info.get(READ_ONLY, False) != read_only:
        connection.exec_driver_sql(f"PRAGMA query_only = {int(read_only)}")
        connection.info[READ_ONLY] = read_only
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
