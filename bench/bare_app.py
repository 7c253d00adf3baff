"""Bare Flask baselines that parse the same body as CCM and answer at once, with no database, no
broker and no validation: ``POST /v1/messages`` for bench/api_send.py (answers 202) and the
Segment-spec ``POST /v1/batch`` for bench/ingest_batch.py (gunzipped when the request says so,
answers ``{"success": true}`` as the tracking API does)."""

import gzip
import json

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/v1/messages")
def send():  # type: ignore[no-untyped-def]
    request.get_json()
    return jsonify(id="msg_baseline", status="queued"), 202


@app.post("/v1/batch")
def batch():  # type: ignore[no-untyped-def]
    raw = request.get_data()
    if request.headers.get("Content-Encoding", "").lower() == "gzip":
        raw = gzip.decompress(raw)
    json.loads(raw)
    return jsonify(success=True)
