"""A real HTTP/1.1 server on 127.0.0.1 for tests, built on ``http.server``.

    with HttpTestServer() as server:
        server.respond("/v1/messages", status=201, json={"id": "m1"})
        client.post(server.url + "/v1/messages", json={"to": "bob"})
        request = server.requests[0]
        assert request.method == "POST" and request.json() == {"to": "bob"}

Every request is recorded (method, path, query, headers, body) before it is answered. Answers are
scripted per path (the query is ignored): scripted answers are used in order and the last one
repeats; an unscripted path gets ``404 {"error": "not scripted"}``. An answer can be delayed (to
make a client's read timeout fire) or be a dropped connection (:meth:`HttpTestServer.disconnect`).
:func:`refused_url` gives a URL on which nothing listens.
"""

from __future__ import annotations

import base64
import contextlib
import email.message
import email.parser
import email.policy
import json as jsonlib
import socket
import struct
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from werkzeug.serving import make_server

HOST = "127.0.0.1"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as it arrived. Header names are lower-case; repeated headers are joined by ``, ``."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return jsonlib.loads(self.body)

    def form(self) -> dict[str, str]:
        """An ``application/x-www-form-urlencoded`` body (the last value of a repeated field)."""
        return {name: values[-1] for name, values in parse_qs(self.body.decode(), keep_blank_values=True).items()}

    def multipart(self) -> dict[str, FormPart]:
        """The parts of a ``multipart/form-data`` body, by field name, with their exact bytes."""
        boundary = self._content_type().get_param("boundary")
        parts = {}
        for chunk in self.body.split(b"--" + boundary.encode())[1:-1]:
            head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
            headers = email.parser.BytesHeaderParser(policy=email.policy.HTTP).parsebytes(head + b"\r\n\r\n")
            name = headers.get_param("name", header="content-disposition")
            parts[name] = FormPart(name, headers.get_filename(), headers.get_content_type(), data.removesuffix(b"\r\n"))
        return parts

    def _content_type(self) -> email.message.Message:
        return email.parser.Parser(policy=email.policy.HTTP).parsestr(
            f"Content-Type: {self.headers.get('content-type', '')}\r\n\r\n"
        )

    def basic_auth(self) -> tuple[str, str] | None:
        """The ``(user, password)`` of an ``Authorization: Basic`` header."""
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, password = base64.b64decode(value).decode().partition(":")
        return user, password


@dataclass(frozen=True)
class FormPart:
    """One part of a multipart form: ``filename`` is None for a plain field."""

    name: str
    filename: str | None
    content_type: str
    data: bytes


@dataclass(frozen=True)
class _Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    disconnect: bool = False
    reset: bool = True


class HttpTestServer:
    """A loopback HTTP server that records requests and answers as scripted.

    Attributes:
      requests: every request received, in order (recorded before it is answered).
    """

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._scripts: dict[str, list[_Answer]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd = _Server((HOST, 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.005}, name="http-test-server", daemon=True
        )

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, without a trailing slash."""
        return f"http://{HOST}:{self.port}"

    def respond(
        self,
        path: str,
        status: int = 200,
        *,
        json: Any = None,
        body: bytes | str = b"",
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Script the next answer for ``path``.

        Parameters:
          json: a value sent as the body with ``Content-Type: application/json``.
          body: the raw body otherwise (``str`` is sent as UTF-8 ``text/plain``).
          delay: seconds to wait before answering; the server's ``stop`` cuts it short.
        """
        all_headers = dict(headers or {})
        if json is not None:
            body = jsonlib.dumps(json).encode()
            all_headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
            all_headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        self._script(path, _Answer(status, all_headers, body, delay))

    def disconnect(self, path: str, *, reset: bool = True, delay: float = 0.0) -> None:
        """Script reading the whole request for ``path`` and then closing the connection without
        answering: with a TCP reset (``reset=True``) or an orderly close."""
        self._script(path, _Answer(delay=delay, disconnect=True, reset=reset))

    def reset(self) -> None:
        """Forget the recorded requests and every script."""
        with self._lock:
            self.requests.clear()
            self._scripts.clear()

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path == path]

    def start(self) -> HttpTestServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # wakes handler threads waiting on idle keep-alive connections
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HttpTestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _script(self, path: str, answer: _Answer) -> None:
        with self._lock:
            self._scripts.setdefault(path, []).append(answer)

    def _answer_for(self, path: str) -> _Answer:
        with self._lock:
            queue = self._scripts.get(path)
            if not queue:
                return _Answer(404, {"Content-Type": "application/json"}, b'{"error": "not scripted"}')
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _track(self, conn: socket.socket, *, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


def refused_url() -> str:
    """``http://127.0.0.1:<port>`` where nothing listens (the port was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    return f"http://{HOST}:{port}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: HttpTestServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out or hung up is what many tests do on purpose; anything else is a bug.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real APIs do: clients reuse connections
    timeout = 10  # an idle keep-alive connection is dropped after this many seconds
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.owner._track(self.connection, open_=False)
        try:
            super().finish()
        except OSError:
            pass  # the connection was reset on purpose

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests assert on requests, not on the access log

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _handle(self) -> None:
        owner = self.server.owner
        parts = urlsplit(self.path)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        owner._record(
            RecordedRequest(
                self.command, parts.path, parse_qs(parts.query, keep_blank_values=True), headers, self._read_body()
            )
        )
        answer = owner._answer_for(parts.path)
        if answer.delay and owner._stopping.wait(answer.delay):
            self._drop(reset=True)
            return
        if answer.disconnect:
            self._drop(reset=answer.reset)
            return
        self._send(answer)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        body = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return body
            body += self.rfile.read(size)
            self.rfile.readline()

    def _send(self, answer: _Answer) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    def _drop(self, *, reset: bool) -> None:
        self.close_connection = True
        if reset:
            # Linger 0: close() sends RST instead of FIN, as a crashed peer or middlebox would.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        else:
            self.connection.shutdown(socket.SHUT_RDWR)


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
