"""What a SIGKILL landing between a batch's intent ``COMMIT`` and its final dots tears, for the
three ways the code has had, in the same run.

    .venv/bin/python bench/commit_dot_window.py [--batches 150] [--busy 0,1,3] [--kills 60]

``before`` (psycopg's ``commit()``, then ``sendall`` per socket) and ``libpq, then the dots``
(ccm/db_commit.py's fallback: the ``COMMIT`` flushed by libpq with the GIL held, then
:func:`ccm.socket_writes.write_each`) have a window: timed from the ``COMMIT`` call (before) or
from its bytes leaving (libpq) to the last of 50 dots on loopback TCP connections, while
``--busy`` other threads burn CPU in Python (what rendering threads do to the GIL); then over TLS.
``one system call`` (the default: the ``COMMIT`` and the dots in one io_uring submission,
:func:`ccm.socket_writes.write_together`) has none; its line gives how long that call takes.

``--kills``: for the fallback and for the one system call, that many child processes committing
rows and writing each id on 50 sockets, each SIGKILLed at a random moment
(tests/support/commit_kills.py); the kills that tore a batch (committed, not on every socket).
"""

from __future__ import annotations

import argparse
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import database_url, save  # noqa: E402
from ccm import socket_writes  # noqa: E402
from ccm.db import Database  # noqa: E402
from ccm.db_commit import commit_writing  # noqa: E402
from tests.support import commit_kills  # noqa: E402
from tests.support.smtp_server import make_self_signed_cert  # noqa: E402

DOTS = 50
QUANTILES = (("median", 0.5), ("p90", 0.9), ("p99", 0.99))


@contextmanager
def sink_connections(count: int, tls: ssl.SSLContext | None) -> Iterator[list[socket.socket]]:
    """``count`` TCP connections (TLS with ``tls``, the server's context) to a loopback server
    that reads and discards everything."""
    server = socket.create_server(("127.0.0.1", 0), backlog=count)

    def drain(conn: socket.socket) -> None:
        if tls is not None:
            conn = tls.wrap_socket(conn, server_side=True)
        while conn.recv(65536):
            pass

    def accept() -> None:
        for _ in range(count):
            threading.Thread(target=drain, args=(server.accept()[0],), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    clients = [socket.create_connection(server.getsockname()) for _ in range(count)]
    if tls is not None:
        insecure = ssl.create_default_context()
        insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
        clients = [insecure.wrap_socket(client) for client in clients]
    for client in clients:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.settimeout(5)
    yield clients
    for client in clients:
        client.close()
    server.close()


@contextmanager
def busy_threads(count: int) -> Iterator[None]:
    stop = threading.Event()

    def burn() -> None:
        while not stop.is_set():
            sum(i * i for i in range(2000))

    threads = [threading.Thread(target=burn, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    yield
    stop.set()
    for thread in threads:
        thread.join()


def before(db: Database, clients: list[socket.socket]) -> float:
    with db.unit_of_work() as session:
        session.execute(text("UPDATE window_probe SET v = v + 1"))
        started = time.perf_counter()
        session.commit()
        for client in clients:
            client.sendall(b".\r\n")
        return time.perf_counter() - started


def timed(name: str, took: list[float]) -> Callable[..., object]:
    """``socket_writes.<name>``, recording how long each call takes."""
    original = getattr(socket_writes, name)

    def call(writes: list) -> object:
        started = time.perf_counter()
        try:
            return original(writes)
        finally:
            took.append(time.perf_counter() - started)

    return call


def through(name: str, *, joint: bool) -> Callable[[Database, list[socket.socket]], float]:
    """A batch through :func:`commit_writing`, timing ``socket_writes.<name>`` (the dots after
    libpq's COMMIT, or the one call that carries both)."""

    def way(db: Database, clients: list[socket.socket]) -> float:
        took: list[float] = []
        original = getattr(socket_writes, name)
        socket_writes.USE_IO_URING, saved = joint, socket_writes.USE_IO_URING
        setattr(socket_writes, name, timed(name, took))
        try:
            with db.unit_of_work() as session:
                session.execute(text("UPDATE window_probe SET v = v + 1"))
                commit_writing(session, [(client, b".\r\n") for client in clients])
        finally:
            setattr(socket_writes, name, original)
            socket_writes.USE_IO_URING = saved
        return took[-1]

    return way


after = through("write_each", joint=False)
joint = through("write_together", joint=True)


def measure(
    way: Callable[[Database, list[socket.socket]], float],
    db: Database,
    batches: int,
    busy: int,
    tls: ssl.SSLContext | None = None,
) -> dict:
    with sink_connections(DOTS, tls) as clients, busy_threads(busy):
        windows = []
        for _ in range(batches):
            windows.append(way(db, clients) * 1e6)
            time.sleep(0.01)
    windows.sort()
    found = {f"{name}_us": round(windows[min(len(windows) - 1, int(len(windows) * q))]) for name, q in QUANTILES}
    return {**found, "mean_us": round(statistics.mean(windows))}


def tls_windows(db: Database, batches: int, busy: int) -> dict[str, dict]:
    """The same over TLS, where every dot releases the GIL: before, after with the usual switch
    interval, after with the interval cut while the dots are written (the default)."""
    cert = make_self_signed_cert(Path(tempfile.mkdtemp(prefix="ccm-tls-")))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert.cert_path, cert.key_path)
    cut, results = socket_writes.TLS_SWITCH_INTERVAL, {}
    for name, way, interval in (("before", before, None), ("after", after, None), ("after", after, cut)):
        socket_writes.TLS_SWITCH_INTERVAL = interval
        label = f"{name}, TLS, {busy} busy threads" + (f", switch interval {interval * 1e6:.0f} us" if interval else "")
        results[label] = found = measure(way, db, batches, busy, server)
        print(f"{label}: {found}", flush=True)
    socket_writes.TLS_SWITCH_INTERVAL = cut
    return results


def kills(db: Database, url: str, count: int) -> dict[str, dict]:
    """Kill ``count`` committing children for each way; the kills that tore a batch."""
    with db.unit_of_work() as session:
        session.execute(text("DROP TABLE IF EXISTS commit_probe"))
        session.execute(text("CREATE TABLE commit_probe (id INTEGER PRIMARY KEY)"))
    results = {}
    for name, use_joint in (("libpq, then the dots", False), ("one system call", True)):
        rounds = commit_kills.kill_rounds(db, url, count, joint=use_joint)
        results[name] = found = {
            "kills": len(rounds),
            "batches_committed": sum(r.committed for r in rounds),
            "kills_that_tore_a_batch": sum(1 for r in rounds if r.torn),
            "dots_torn": sum(len(r.torn) for r in rounds),
        }
        print(f"kills, {name}: {found}", flush=True)
    with db.unit_of_work() as session:
        session.execute(text("DROP TABLE commit_probe"))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--busy", default="0,1,3")
    parser.add_argument("--tls-busy", type=int, default=3, help="busy threads of the TLS runs (-1: none)")
    parser.add_argument("--kills", type=int, default=60, help="SIGKILLed children per way (0: none)")
    args = parser.parse_args()
    if why := socket_writes.io_uring_unavailable():
        raise SystemExit(f"io_uring is not available here ({why}): nothing to compare")
    url = database_url()
    db = Database(url)
    with db.unit_of_work() as session:
        session.execute(text("DROP TABLE IF EXISTS window_probe"))
        session.execute(text("CREATE TABLE window_probe (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)"))
        session.execute(text("INSERT INTO window_probe SELECT g, 0 FROM generate_series(1, 50) g"))
    results = {}
    for busy in (int(n) for n in args.busy.split(",")):
        for name, way in (("before", before), ("after", after), ("one system call", joint)):
            results[f"{name}, {busy} busy threads"] = found = measure(way, db, args.batches, busy)
            print(f"{name:15} {busy} busy threads: {found}", flush=True)
    if args.tls_busy >= 0:
        results.update(tls_windows(db, args.batches, args.tls_busy))
    with db.unit_of_work() as session:
        session.execute(text("DROP TABLE window_probe"))
    killed = kills(db, url, args.kills) if args.kills else {}
    db.dispose()
    save(
        "commit_dot_window",
        {"when": time.strftime("%Y-%m-%d %H:%M"), "dots": DOTS, "windows": results, "kills": killed},
    )


if __name__ == "__main__":
    main()
