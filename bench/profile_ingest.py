"""Where an ingested batch's time goes, in one process: ``POST /v1/batch`` called on the WSGI app
directly (no HTTP server), under cProfile, against the benchmark database; and the statements and
database round trips one batch costs. The events are those of bench/ingest.lua.

    .venv/bin/python bench/profile_ingest.py [--requests 200] [--batch 100] [--profiles 10000] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import pstats
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import REDIS_URL, analyze, database_url, fresh_database  # noqa: E402
from bench.ingest_batch import seed_ingest  # noqa: E402
from bench.profile_accept import Counter  # noqa: E402


def event(n: int, user: int, stamp: str) -> dict[str, Any]:
    """One event of bench/ingest.lua's mix: 70 % track, 20 % page, 10 % identify."""
    roll = n % 10
    if roll < 7:
        body: dict[str, Any] = {
            "type": "track",
            "event": "Order Completed",
            "properties": {"order_id": f"o-{n}", "revenue": n % 500 + 0.9, "currency": "EUR"},
        }
    elif roll < 9:
        body = {"type": "page", "name": "/pricing", "properties": {"path": "/pricing", "title": "Example"}}
    else:
        body = {"type": "identify", "traits": {"email": f"user{user}@example.com", "plan": "pro", "logins": n % 97}}
    context = {"ip": "203.0.113.7", "userAgent": "Mozilla/5.0 (X11; Linux x86_64)"}
    ids = {"userId": f"u{user}", "anonymousId": f"anon-{user}", "messageId": f"p-{n}"}
    return {**body, **ids, "timestamp": stamp, "context": context}


def request_body(n: int, batch: int, profiles: int) -> bytes:
    stamp = dt.datetime.now(dt.UTC).isoformat()
    items = [event(n * batch + i, random.randrange(profiles), stamp) for i in range(batch)]
    return json.dumps({"batch": items, "sentAt": stamp}).encode()


def call(app: Any, body: bytes, credentials: str) -> int:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/v1/batch",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": f"Basic {credentials}",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    status: list[str] = []
    chunks = app(environ, lambda s, h, exc_info=None: status.append(s))
    b"".join(chunks)
    getattr(chunks, "close", lambda: None)()
    return int(status[0].split()[0])


def timed(app: Any, bodies: list[bytes], credentials: str, profiler: cProfile.Profile | None) -> tuple[float, float]:
    """Wall and CPU seconds for posting ``bodies`` one after the other."""
    started, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    for body in bodies:
        assert call(app, body, credentials) == 200
    if profiler:
        profiler.disable()
    return time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--profiles", type=int, default=10000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    from ccm.app import create_app
    from ccm.config import Settings

    fresh_database()
    credentials = seed_ingest(profiles=args.profiles)
    analyze()
    app = create_app(
        Settings(database_url=database_url(), redis_url=REDIS_URL, secret_key="bench", log_level="WARNING")
    )
    runtime = app.extensions["ccm"]
    timed(app, [request_body(10**6 + n, args.batch, args.profiles) for n in range(50)], credentials, None)
    counter = Counter(runtime.db.engine, None)
    before = counter.snapshot()
    call(app, request_body(0, args.batch, args.profiles), credentials)
    statements, begins, commits, _ = (after - start for after, start in zip(counter.snapshot(), before, strict=True))
    print(
        f"one batch of {args.batch}: {statements} statements, {begins} BEGIN, {commits} COMMIT"
        f" (database round trips: {statements + begins + commits})"
    )
    unit = args.requests * args.batch
    profiler = cProfile.Profile()
    for label, run, with_profiler in (("not profiled", 1, None), ("profiled", 2, profiler)):
        bodies = [request_body(run * 10**5 + n, args.batch, args.profiles) for n in range(args.requests)]
        wall, cpu = timed(app, bodies, credentials, with_profiler)
        print(f"{unit} events, {label}: {wall * 1e6 / unit:.1f} µs wall, {cpu * 1e6 / unit:.1f} µs CPU per event")
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
