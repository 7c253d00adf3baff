"""The baseline for bench/tracking.py: a bare Flask endpoint answering a 1×1 GIF, with no token
check and no buffering."""

import base64

from flask import Flask, Response

app = Flask(__name__)
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


@app.get("/t/o/<token>.gif")
def pixel(token: str) -> Response:
    return Response(PIXEL, mimetype="image/gif")
