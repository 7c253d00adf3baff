"""The durable baseline for bench/api_send.py: a bare Flask endpoint that parses the same body and
stores it with one INSERT in one transaction (psycopg 3, one connection per worker thread,
prepared statements), then answers 202. No validation, no idempotency, no broker. The batch
baseline (for bench/api_batch.py) stores every item of a batch the same way, with one
``executemany`` (psycopg pipelines it) in one transaction.

``BENCH_DSN`` is the database (a libpq URL); the table ``bench_baseline`` is made on first use.
"""

from __future__ import annotations

import os
import threading

import psycopg
from flask import Flask, jsonify, request
from psycopg.types.json import Jsonb

app = Flask(__name__)
_local = threading.local()
_INSERT = "INSERT INTO bench_baseline (id, body) VALUES (%s, %s)"


def connection() -> psycopg.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = psycopg.connect(os.environ["BENCH_DSN"], prepare_threshold=0)
        try:
            with conn.transaction():
                conn.execute("CREATE TABLE IF NOT EXISTS bench_baseline (id text PRIMARY KEY, body jsonb NOT NULL)")
        except psycopg.errors.UniqueViolation:
            pass  # another worker created it at the same moment (IF NOT EXISTS does not lock)
        _local.conn = conn
    return conn


@app.post("/v1/messages")
def send():  # type: ignore[no-untyped-def]
    body = request.get_json()
    message_id = "msg_" + os.urandom(13).hex()
    conn = connection()
    with conn.transaction():
        conn.execute(_INSERT, (message_id, Jsonb(body)))
    return jsonify(id=message_id, status="queued"), 202


@app.post("/v1/messages/batch")
def send_batch():  # type: ignore[no-untyped-def]
    items = request.get_json()["messages"]
    rows = [("msg_" + os.urandom(13).hex(), Jsonb(item)) for item in items]
    conn = connection()
    with conn.transaction(), conn.cursor() as cursor:
        cursor.executemany(_INSERT, rows)
    return jsonify(items=[{"index": n, "status": 202, "id": row[0]} for n, row in enumerate(rows)])
