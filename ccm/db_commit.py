"""A commit whose ``COMMIT`` leaves for PostgreSQL in the same instant as some writes on other
sockets: the batched delivery's intent and its SMTP final dots (ccm/messages/batch.py). A worker
killed between the two would leave messages recorded as handed over whose dot never left: lost.

Where it can (PostgreSQL over plain TCP or a Unix socket, io_uring allowed), the ``COMMIT`` is not
sent by libpq: its bytes (a simple-protocol ``Query``) go out with the other writes in one system
call (:func:`ccm.socket_writes.write_together`), which a SIGKILL cannot split. The answer is read
from the socket here; an empty query through libpq then brings libpq's idea of the connection
(idle, no transaction) up to date, so SQLAlchemy's own commit, which runs the after-commit
callbacks, sends nothing. Anything in the answer libpq would have wanted to see (a parameter
change, a notification) retires the connection from the pool.

Elsewhere (TLS to PostgreSQL, io_uring refused) the ``COMMIT`` is queued in pipeline mode and
flushed by ``PQpipelineSync``, which psycopg's C implementation calls with the GIL held, and the
writes follow at once (:func:`ccm.socket_writes.write_each`): nothing else in the process runs in
between, and the gap is about 15 µs a write. On SQLite the writes follow the commit.
"""

from __future__ import annotations

import os
import select
import struct
from collections.abc import Iterator, Sequence

import psycopg
from psycopg import pq
from sqlalchemy.orm import Session

from ccm import socket_writes
from ccm.db import commit
from ccm.socket_writes import Write

_ANSWER_TIMEOUT = 60.0
"""Seconds to wait for the answer to a ``COMMIT`` already sent (a server that never answers)."""
_COMMIT_QUERY = b"Q" + struct.pack("!i", 4 + len(b"COMMIT\0")) + b"COMMIT\0"
"""The protocol's simple ``Query`` message for ``COMMIT``."""
_HEADER = struct.Struct("!ci")


class CommitUnconfirmed(Exception):
    """The writes were made, but the database did not confirm the ``COMMIT`` (it refused it, or the
    connection broke): the transaction may or may not have committed. ``write_failures`` are the
    writes that failed, by position."""

    def __init__(self, reason: str, write_failures: dict[int, OSError]) -> None:
        super().__init__(reason)
        self.write_failures = write_failures


def commit_writing(session: Session, writes: Sequence[Write]) -> dict[int, OSError]:
    """Commit the session's transaction and make ``writes`` in the same instant as the ``COMMIT``
    leaves (PostgreSQL), or right after the commit (any other database). Returns the writes that
    failed, by position.

    An error before anything was written propagates as it is: nothing committed, nothing written.

    Raises:
      CommitUnconfirmed: the writes were made and the outcome of the ``COMMIT`` is not known to be
        a success.
    """
    dbapi = session.connection().connection.dbapi_connection
    if not isinstance(dbapi, psycopg.Connection) or not psycopg.Pipeline.is_supported():
        commit(session)
        return socket_writes.write_each(writes)
    session.flush()
    pgconn = dbapi.pgconn
    status = pgconn.transaction_status
    if status == pq.TransactionStatus.INERROR:  # a COMMIT would roll back: nothing may follow it
        raise psycopg.errors.InFailedSqlTransaction("the transaction failed; it cannot commit")
    if status != pq.TransactionStatus.INTRANS:  # nothing was written: no answer to wait for
        commit(session)
        return socket_writes.write_each(writes)
    failures = None if pgconn.ssl_in_use else socket_writes.write_together([(pgconn.socket, _COMMIT_QUERY), *writes])
    if failures is None:
        error, failures = _commit_pipelined(session, pgconn, writes)
    else:
        error = _commit_answer_raw(session, pgconn, failures.pop(0, None))
        failures = {n - 1: exc for n, exc in failures.items()}
    if error is not None:
        raise CommitUnconfirmed(error, failures)
    commit(session)
    return failures


def _commit_pipelined(session: Session, pgconn: pq.abc.PGconn, writes: Sequence[Write]) -> tuple[str | None, dict]:
    """The ``COMMIT`` through libpq, the writes right after its bytes left; what went wrong."""
    try:
        _send_commit(pgconn)
    except BaseException:
        session.connection().invalidate()  # left in pipeline mode, or broken: not for reuse
        raise
    try:
        failures = socket_writes.write_each(writes)
    finally:
        error = _commit_answer(pgconn)
    if error is not None and (pgconn.status != pq.ConnStatus.OK or pgconn.pipeline_status != pq.PipelineStatus.OFF):
        session.connection().invalidate()  # broken, or an answer still unread: not for reuse
    return error, failures


def _send_commit(pgconn: pq.abc.PGconn) -> None:
    """``COMMIT`` queued in pipeline mode, then flushed by the sync (with the GIL held)."""
    pgconn.enter_pipeline_mode()
    pgconn.send_query_params(b"COMMIT", None)
    pgconn.pipeline_sync()
    while pgconn.flush():  # a full socket buffer: the COMMIT has not fully left yet
        _wait(pgconn.socket, write=True)


def _commit_answer(pgconn: pq.abc.PGconn) -> str | None:
    """Read the answer to the pipelined ``COMMIT``; None if it committed, else what went wrong."""
    error: str | None = "no answer to COMMIT"
    try:
        for result in _results_until_sync(pgconn):
            ok = result.status == pq.ExecStatus.COMMAND_OK and result.command_status == b"COMMIT"
            error = None if ok else (result.error_message.decode("utf-8", "replace") or "COMMIT refused")
        pgconn.exit_pipeline_mode()
    except (psycopg.Error, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return error


def _results_until_sync(pgconn: pq.abc.PGconn) -> Iterator[pq.abc.PGresult]:
    """The results before the pipeline's sync point; two empty ones in a row mean the connection
    has nothing more to say (it broke)."""
    empty = 0
    while empty < 2:
        while pgconn.is_busy():
            _wait(pgconn.socket, write=False)
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is not None and result.status == pq.ExecStatus.PIPELINE_SYNC:
            return
        empty = empty + 1 if result is None else 0
        if result is not None:
            yield result
    raise psycopg.OperationalError(f"the connection broke before the COMMIT's answer: {pgconn.error_message!r}")


def _commit_answer_raw(session: Session, pgconn: pq.abc.PGconn, send_error: OSError | None) -> str | None:
    """Read the answer to the ``COMMIT`` written outside libpq, then bring libpq up to date; None
    if it committed, else what went wrong (the connection is then retired)."""
    if send_error is not None:
        session.connection().invalidate()
        return f"the COMMIT could not be sent: {send_error}"
    try:
        error, clean = _read_commit_answer(pgconn.socket)
        if clean:
            pgconn.exec_(b"")  # an empty query: its ReadyForQuery tells libpq the transaction ended
            clean = pgconn.transaction_status == pq.TransactionStatus.IDLE
    except (OSError, psycopg.Error) as exc:
        error, clean = f"{type(exc).__name__}: {exc}", False
    if not clean:
        session.connection().invalidate()
    return error


def _read_commit_answer(fd: int) -> tuple[str | None, bool]:
    """The server's messages up to ReadyForQuery: (None if ``COMMIT`` completed, else the error;
    whether nothing came that libpq should have seen)."""
    buffer = b""
    error: str | None = "no answer to COMMIT"
    clean = True
    while True:
        while len(buffer) < _HEADER.size or len(buffer) < 1 + _HEADER.unpack_from(buffer)[1]:
            _wait(fd, write=False)
            chunk = os.read(fd, 65536)
            if not chunk:
                raise ConnectionError("the database closed the connection before the COMMIT's answer")
            buffer += chunk
        kind, length = _HEADER.unpack_from(buffer)
        body, buffer = buffer[_HEADER.size : 1 + length], buffer[1 + length :]
        if kind == b"C":
            error = None if body.rstrip(b"\0") == b"COMMIT" else f"COMMIT answered {body!r}"
        elif kind == b"E":
            error = _error_text(body)
        elif kind == b"Z":
            return error, clean and not buffer
        elif kind != b"N":  # a notice libpq would only have logged; anything else it needed
            clean = False


def _error_text(body: bytes) -> str:
    """The severity, SQLSTATE and message of an ErrorResponse."""
    fields = {part[:1]: part[1:].decode("utf-8", "replace") for part in body.split(b"\0") if part}
    return f"{fields.get(b'S', 'ERROR')}: {fields.get(b'M', 'COMMIT refused')} (SQLSTATE {fields.get(b'C', '?')})"


def _wait(fd: int, *, write: bool) -> None:
    ready = select.select([] if write else [fd], [fd] if write else [], [], _ANSWER_TIMEOUT)
    if not any(ready):
        raise TimeoutError(f"the database did not answer within {_ANSWER_TIMEOUT:.0f} s")
