"""Fixtures of the tracking API tests: CCM served on loopback for the official clients to send to
(the workspace's ``write_key`` is in tests/conftest.py)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server


@contextlib.contextmanager
def serving(wsgi_app: Any) -> Iterator[str]:
    """``wsgi_app`` served on 127.0.0.1 (a free port, a thread per request); yields its base URL."""
    server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


@pytest.fixture
def live_server(app: Any) -> Iterator[str]:
    with serving(app) as url:
        yield url
