"""The baseline for bench/api_send.py: a bare Flask JSON endpoint that parses the same body and
answers 202, with no database, no broker and no validation."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/v1/messages")
def send():  # type: ignore[no-untyped-def]
    request.get_json()
    return jsonify(id="msg_baseline", status="queued"), 202
