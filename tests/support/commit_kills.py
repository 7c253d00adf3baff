"""A child process SIGKILLed while it commits rows and writes each row's id on many sockets with
:func:`ccm.db_commit.commit_writing` — the shape of a batch's intent and its final dots — and
what each kill tore: ids committed that some socket never got (a lost message), or ids a socket
got that never committed (one that would be sent again). tests/test_db_commit.py asserts none;
bench/commit_dot_window.py counts them for both ways of writing, in the same run.

The table ``commit_probe (id INTEGER PRIMARY KEY)`` must exist.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from ccm.db import Database

ROOT = Path(__file__).resolve().parents[2]
SOCKETS = 50
"""Sockets each commit writes to: a batch's 50 SMTP connections."""
CHILD_NAME = "ccm-commit-probe"
"""The child's ``application_name``: its session is waited for after each kill."""

_CHILD = textwrap.dedent(
    """
    import socket, sys
    from sqlalchemy import text
    from ccm import socket_writes
    from ccm.db import Database
    from ccm.db_commit import commit_writing

    url, port, first, sockets, joint = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    socket_writes.USE_IO_URING = joint == "1"
    db = Database(url)
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(sockets)]
    for conn in conns:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with db.unit_of_work() as session:
        session.execute(text("SELECT 1"))
    print("ready", flush=True)
    n = first
    while True:
        with db.unit_of_work() as session:
            session.execute(text("INSERT INTO commit_probe (id) VALUES (:n)"), {"n": n})
            commit_writing(session, [(conn, b"%d\\n" % n) for conn in conns])
        n += 1
    """
)


@dataclass(frozen=True)
class Round:
    committed: int
    """Rows the child committed before it was killed."""
    torn: list[int]
    """Ids committed but missing on some socket, or on some socket but not committed (once per socket)."""


def kill_rounds(db: Database, url: str, rounds: int, *, joint: bool, sockets: int = SOCKETS) -> list[Round]:
    """``rounds`` children, each SIGKILLed 50–300 ms after it is ready; what each kill tore."""
    first, found = _next_id(db), []
    for _ in range(rounds):
        delivered = _killed_while_committing(url, first, joint=joint, sockets=sockets)
        _wait_for_child_sessions(db)
        committed = {n for n in _ids(db) if n >= first}
        assert len(delivered) == sockets, "a socket's connection was never made"
        torn = sorted(n for ids in delivered for n in committed ^ ids)
        found.append(Round(len(committed), torn))
        first = max(committed | set().union(*delivered), default=first) + 1
    return found


def _killed_while_committing(url: str, first: int, *, joint: bool, sockets: int) -> list[set[int]]:
    """One child run, SIGKILLed at a random moment; the ids each of its sockets delivered."""
    received: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0), backlog=sockets) as server:
        readers = [threading.Thread(target=_drain, args=(server, received)) for _ in range(sockets)]
        for reader in readers:
            reader.start()
        port, tagged = str(server.getsockname()[1]), f"{url}{'&' if '?' in url else '?'}application_name={CHILD_NAME}"
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, tagged, port, str(first), str(sockets), str(int(joint))],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            assert child.stdout is not None and child.stdout.readline() == b"ready\n"
            time.sleep(random.uniform(0.05, 0.3))
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        for reader in readers:
            reader.join(timeout=10)
    return [{int(line) for line in data.splitlines()} for data in received]


def _drain(server: socket.socket, into: list[bytes]) -> None:
    conn, _ = server.accept()
    data = b""
    with conn:
        while chunk := conn.recv(65536):
            data += chunk
    into.append(data)


def _ids(db: Database) -> list[int]:
    with db.read_only() as session:
        return list(session.execute(text("SELECT id FROM commit_probe ORDER BY id")).scalars())


def _next_id(db: Database) -> int:
    return max(_ids(db), default=-1) + 1


def _wait_for_child_sessions(db: Database) -> None:
    """Wait until the dead child's session has ended (a COMMIT it sent still commits)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with db.read_only() as session:
            left = session.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"), {"name": CHILD_NAME}
            ).scalar_one()
        if not left:
            return
        time.sleep(0.02)
