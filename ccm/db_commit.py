"""A commit that lets its caller act the instant the ``COMMIT`` has left for PostgreSQL, before
the answer: the batched delivery writes its SMTP final dots there (ccm/messages/batch.py), so
that a worker killed between its intent and its dots loses as little as possible.

psycopg's ``commit()`` sends ``COMMIT`` and waits for the answer with the GIL released; a thread
getting the GIL back waits up to a switch interval (5 ms) while others run. Here the ``COMMIT`` is
queued in pipeline mode and flushed by ``PQpipelineSync``, which psycopg's C implementation calls
with the GIL held, so nothing else in the process runs between the bytes leaving and ``then()``.
The answer is read afterwards; psycopg then finds the connection idle, so SQLAlchemy's own commit
(which runs the after-commit callbacks) sends nothing.
"""

from __future__ import annotations

import select
from collections.abc import Callable, Iterator

import psycopg
from psycopg import pq
from sqlalchemy.orm import Session

from ccm.db import commit

_ANSWER_TIMEOUT = 60.0
"""Seconds to wait for the answer to a ``COMMIT`` already sent (a server that never answers)."""


class CommitUnconfirmed(Exception):
    """``then()`` ran, but the database did not confirm the ``COMMIT`` (it refused it, or the
    connection broke): the transaction may or may not have committed."""


def commit_then(session: Session, then: Callable[[], None]) -> None:
    """Commit the session's transaction and call ``then`` once, as soon as the ``COMMIT`` is on
    its way (PostgreSQL) or done (any other database, where there is no such gap).

    ``then`` must not raise. An error before ``then`` ran propagates as it is: nothing committed.

    Raises:
      CommitUnconfirmed: ``then`` ran and the outcome of the ``COMMIT`` is not known to be a success.
    """
    dbapi = session.connection().connection.dbapi_connection
    if not isinstance(dbapi, psycopg.Connection) or not psycopg.Pipeline.is_supported():
        commit(session)
        then()
        return
    session.flush()
    status = dbapi.pgconn.transaction_status
    if status == pq.TransactionStatus.INERROR:  # a COMMIT would roll back: nothing may follow it
        raise psycopg.errors.InFailedSqlTransaction("the transaction failed; it cannot commit")
    if status != pq.TransactionStatus.INTRANS:  # nothing was written: no answer to wait for
        commit(session)
        then()
        return
    try:
        _send_commit(dbapi.pgconn)
    except BaseException:
        session.connection().invalidate()  # left in pipeline mode, or broken: not for reuse
        raise
    try:
        then()
    finally:
        error = _commit_answer(dbapi.pgconn)
    if error is not None:
        if dbapi.pgconn.status != pq.ConnStatus.OK or dbapi.pgconn.pipeline_status != pq.PipelineStatus.OFF:
            session.connection().invalidate()  # broken, or an answer still unread: not for reuse
        raise CommitUnconfirmed(error)
    commit(session)


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


def _wait(fd: int, *, write: bool) -> None:
    ready = select.select([] if write else [fd], [fd] if write else [], [], _ANSWER_TIMEOUT)
    if not any(ready):
        raise TimeoutError(f"the database did not answer within {_ANSWER_TIMEOUT:.0f} s")
