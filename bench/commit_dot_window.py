"""How long a batch's "intent committed, dots not yet written" window lasts — what a SIGKILL
landing in it loses — before and after ccm/db_commit.py + ccm/channels/smtp_dots.py, same run.

    .venv/bin/python bench/commit_dot_window.py [--batches 150] [--busy 0,1,3]

One thread runs ``--batches`` intents shaped like a batch's (a 50-row UPDATE in a transaction, then
its COMMIT) and writes a final dot on each of 50 loopback TCP connections, while ``--busy``
other threads burn CPU in Python (what rendering threads do to the GIL); then over TLS. ``before``: psycopg's
``commit()``, then ``sendall`` per socket — timed from the COMMIT call to the last dot.
``after``: :func:`commit_then` writing the dots with :func:`write_final_dots` — timed from the
moment ``then`` starts (the COMMIT has just left) to the last dot.
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
from ccm.channels import smtp_dots  # noqa: E402
from ccm.channels.smtp_dots import write_final_dots  # noqa: E402
from ccm.db import Database  # noqa: E402
from ccm.db_commit import commit_then  # noqa: E402
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
    cut, results = smtp_dots.TLS_SWITCH_INTERVAL, {}
    for name, way, interval in (("before", before, None), ("after", after, None), ("after", after, cut)):
        smtp_dots.TLS_SWITCH_INTERVAL = interval
        label = f"{name}, TLS, {busy} busy threads" + (f", switch interval {interval * 1e6:.0f} us" if interval else "")
        results[label] = found = measure(way, db, batches, busy, server)
        print(f"{label}: {found}", flush=True)
    smtp_dots.TLS_SWITCH_INTERVAL = cut
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--busy", default="0,1,3")
    parser.add_argument("--tls-busy", type=int, default=3, help="busy threads of the TLS runs (-1: none)")
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
    if args.tls_busy >= 0:
        results.update(tls_windows(db, args.batches, args.tls_busy))
    with db.unit_of_work() as session:
        session.execute(text("DROP TABLE window_probe"))
    db.dispose()
    save("commit_dot_window", {"when": time.strftime("%Y-%m-%d %H:%M"), "dots": DOTS, "windows": results})


if __name__ == "__main__":
    main()
