"""Where an accepted message's time goes, in one process: the WSGI app called directly (no HTTP
server, no test client), under cProfile, against the benchmark database; and the statements and
database round trips one accept costs.

    .venv/bin/python bench/profile_accept.py [--requests 3000] [--batch 0] [--top 25]

``--batch N`` profiles ``POST /v1/messages/batch`` with N messages per request instead.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import REDIS_URL, analyze, database_url, fresh_database, seed  # noqa: E402

HTML = "<p>Hello {{ first_name }}, your order {{ order }} is confirmed.</p>"


def environ(path: str, body: bytes, key: str, idempotency_key: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": f"Bearer {key}",
        "HTTP_IDEMPOTENCY_KEY": idempotency_key,
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def request_body(n: int, batch: int) -> tuple[str, bytes]:
    def item(i: int) -> dict[str, Any]:
        return {"to": {"external_id": f"u{i % 1000}"}, "template": "bench", "data": {"order": f"A-{i}"}}

    if not batch:
        return "/v1/messages", json.dumps(item(n)).encode()
    items = [{**item(n * batch + i), "idempotency_key": f"b-{n}-{i}"} for i in range(batch)]
    return "/v1/messages/batch", json.dumps({"messages": items}).encode()


def call(app: Any, path: str, body: bytes, key: str, n: int) -> int:
    status: list[str] = []
    chunks = app(environ(path, body, key, f"p-{n}"), lambda s, h, exc_info=None: status.append(s))
    b"".join(chunks)
    getattr(chunks, "close", lambda: None)()
    return int(status[0].split()[0])


class Counter:
    """Statements, transactions and broker commands one request costs."""

    def __init__(self, engine: Any, broker_client: Any) -> None:
        self.statements = self.begins = self.commits = self.broker = 0
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "begin", self._begin)
        event.listen(engine, "commit", self._commit)
        if broker_client is not None:
            original = broker_client.execute_command

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.broker += 1
                return original(*args, **kwargs)

            broker_client.execute_command = counted

    def _statement(self, *_: Any) -> None:
        self.statements += 1

    def _begin(self, *_: Any) -> None:
        self.begins += 1

    def _commit(self, *_: Any) -> None:
        self.commits += 1

    def snapshot(self) -> tuple[int, int, int, int]:
        return self.statements, self.begins, self.commits, self.broker


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=0)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    from ccm.app import create_app
    from ccm.config import Settings

    fresh_database()
    key = seed(profiles=1000, template_html=HTML)
    analyze()
    app = create_app(
        Settings(database_url=database_url(), redis_url=REDIS_URL, secret_key="bench", log_level="WARNING")
    )
    runtime = app.extensions["ccm"]
    for n in range(300):  # warm: caches, prepared statements, pool
        path, body = request_body(10**6 + n, args.batch)
        assert call(app, path, body, key, 10**6 + n) in (200, 202)
    counter = Counter(runtime.db.engine, getattr(runtime.broker, "client", None))
    before = counter.snapshot()
    path, body = request_body(0, args.batch)
    call(app, path, body, key, 0)
    per_request = [after - start for after, start in zip(counter.snapshot(), before, strict=True)]
    statements, begins, commits, broker = per_request
    print(
        f"one request: {statements} statements, {begins} BEGIN, {commits} COMMIT"
        f" (database round trips: {statements + begins + commits}), {broker} broker commands"
    )
    unit = args.requests * (args.batch or 1)
    for label, profiler in (("not profiled", None), ("profiled", cProfile.Profile())):
        bodies = [request_body(n, args.batch) for n in range(len(label) * 10**5, len(label) * 10**5 + args.requests)]
        started, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        for n, (path, body) in enumerate(bodies, 1):
            call(app, path, body, key, len(label) * 10**5 + n)
        if profiler:
            profiler.disable()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(f"{unit} messages, {label}: {wall * 1e3 / unit:.3f} ms wall, {cpu * 1e3 / unit:.3f} ms CPU per message")
    stats = pstats.Stats(profiler)  # the profiled one
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
