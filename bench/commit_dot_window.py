"""How long a batch's "intent committed, dots not yet written" window lasts — what a SIGKILL
landing in it loses — before and after ccm/db_commit.py + ccm/channels/smtp_dots.py, same run.

    .venv/bin/python bench/commit_dot_window.py [--batches 150] [--busy 0,1,3]

One thread runs ``--batches`` intents shaped like a batch's (a 50-row UPDATE in a transaction, then
its COMMIT) and writes a final dot on each of 50 loopback TCP connections, while ``--busy``
other threads burn CPU in Python (what rendering threads do to the GIL). ``before``: psycopg's
``commit()``, then ``sendall`` per socket — timed from the COMMIT call to the last dot.
``after``: :func:`commit_then` writing the dots with :func:`write_final_dots` — timed from the
moment ``then`` starts (the COMMIT has just left) to the last dot.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import database_url, save  # noqa: E402
from ccm.channels.smtp_dots import write_final_dots  # noqa: E402
from ccm.db import Database  # noqa: E402
from ccm.db_commit import commit_then  # noqa: E402

DOTS = 50
QUANTILES = (("median", 0.5), ("p90", 0.9), ("p99", 0.99))


@contextmanager
def sink_connections(count: int) -> Iterator[list[socket.socket]]:
    """``count`` TCP connections to a loopback server that reads and discards everything."""
    server = socket.create_server(("127.0.0.1", 0), backlog=count)

    def drain(conn: socket.socket) -> None:
        while conn.recv(65536):
            pass

    def accept() -> None:
        for _ in range(count):
            threading.Thread(target=drain, args=(server.accept()[0],), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    clients = [socket.create_connection(server.getsockname()) for _ in range(count)]
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


def after(db: Database, clients: list[socket.socket]) -> float:
    took = []

    def dots() -> None:
        started = time.perf_counter()
        write_final_dots(clients)
        took.append(time.perf_counter() - started)

    with db.unit_of_work() as session:
        session.execute(text("UPDATE window_probe SET v = v + 1"))
        commit_then(session, dots)
    return took[0]


def measure(way: Callable[[Database, list[socket.socket]], float], db: Database, batches: int, busy: int) -> dict:
    with sink_connections(DOTS) as clients, busy_threads(busy):
        windows = []
        for _ in range(batches):
            windows.append(way(db, clients) * 1e6)
            time.sleep(0.01)
    windows.sort()
    found = {f"{name}_us": round(windows[min(len(windows) - 1, int(len(windows) * q))]) for name, q in QUANTILES}
    return {**found, "mean_us": round(statistics.mean(windows))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--busy", default="0,1,3")
    args = parser.parse_args()
    db = Database(database_url())
    with db.unit_of_work() as session:
        session.execute(text("DROP TABLE IF EXISTS window_probe"))
        session.execute(text("CREATE TABLE window_probe (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)"))
        session.execute(text("INSERT INTO window_probe SELECT g, 0 FROM generate_series(1, 50) g"))
    results = {}
    for busy in (int(n) for n in args.busy.split(",")):
        for name, way in (("before", before), ("after", after)):
            results[f"{name}, {busy} busy threads"] = found = measure(way, db, args.batches, busy)
            print(f"{name:6} {busy} busy threads: {found}", flush=True)
    with db.unit_of_work() as session:
        session.execute(text("DROP TABLE window_probe"))
    db.dispose()
    save("commit_dot_window", {"when": time.strftime("%Y-%m-%d %H:%M"), "dots": DOTS, "windows": results})


if __name__ == "__main__":
    main()
