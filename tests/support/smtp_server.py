"""A real SMTP server on 127.0.0.1 for tests, built on aiosmtpd.

    with SmtpTestServer() as server:
        provider = SmtpProvider.from_url(server.url())
        ...
        assert server.messages[0].rcpt_tos == ("bob@example.com",)

The server listens on a free port, records every accepted message and every command it
answers, and can be told to answer a command with a given reply (``set_reply``), to require
AUTH (``auth=(user, password)``), to offer or require STARTTLS, or to speak implicit TLS
(``tls=make_self_signed_cert(tmp_path)``).
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

HOST = "127.0.0.1"
STAGES = ("MAIL", "RCPT", "DATA_COMMAND", "DATA")


@dataclass(frozen=True)
class ReceivedMessage:
    """One accepted message: the envelope and the exact bytes between DATA and the final dot
    (dot-unstuffed)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes


@dataclass(frozen=True)
class SelfSignedCert:
    """A certificate for ``localhost`` and ``127.0.0.1``; ``cert_path`` doubles as the CA file."""

    cert_path: Path
    key_path: Path


def make_self_signed_cert(directory: Path) -> SelfSignedCert:
    """Write a fresh self-signed certificate and key into ``directory`` with the openssl CLI.

    (The ``cryptography`` package is not installed here; openssl is on every CI image.)
    """
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return SelfSignedCert(cert_path=cert, key_path=key)


class SmtpTestServer:
    """A loopback SMTP server that records what it receives.

    Parameters:
      auth: ``(user, password)``; AUTH LOGIN/PLAIN is then offered and required before MAIL.
      tls: a certificate; STARTTLS is then offered (or, with ``implicit_tls``, spoken at once).
      require_starttls: refuse every command but EHLO/STARTTLS/QUIT until TLS is on.
      implicit_tls: speak TLS from the first byte, like port 465 (``smtps://``).
      pipelining: offer PIPELINING (RFC 2920), as Postfix does.

    Attributes:
      messages: every accepted message, in order.
      commands: the verbs the server has handled (``EHLO``, ``MAIL``, ``RCPT``, ``DATA``, ``RSET``),
        recorded before it replies, in order.
      connections: how many client connections said EHLO.
      mail_delay: seconds the server waits before answering each MAIL (a slow or distant server).

    ``drop_connections()`` closes every client connection from the server side, as an idle
    timeout would; ``stop()`` (or leaving the ``with`` block) aborts them and shuts down.
    """

    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        tls: SelfSignedCert | None = None,
        require_starttls: bool = False,
        implicit_tls: bool = False,
        pipelining: bool = False,
    ) -> None:
        self.messages: list[ReceivedMessage] = []
        self.pipelining = pipelining
        self.mail_delay = 0.0
        self.commands: list[str] = []
        self.implicit_tls = implicit_tls
        self._handler = _Handler(self, auth)
        self._sessions: list[SMTP] = []
        self._transports: list[asyncio.BaseTransport] = []
        self._replies: dict[str, str] = {}
        context = _server_tls_context(tls) if tls else None
        self._controller = _Controller(
            self._handler,
            hostname=HOST,
            port=0,
            server_hostname="localhost",
            ssl_context=context if implicit_tls else None,
            tls_context=None if implicit_tls else context,
            require_starttls=require_starttls,
            authenticator=self._handler.authenticate if auth else None,
            auth_require_tls=False,
        )

    @property
    def port(self) -> int:
        """The port bound on 127.0.0.1, known once the server started."""
        return self._controller.port

    @property
    def connections(self) -> int:
        """How many client connections said EHLO (aiosmtpd's own start-up probe does not)."""
        return len(self._sessions)

    def url(self, *, user: str | None = None, password: str | None = None, **params: str) -> str:
        """A ``smtp://`` (or ``smtps://``) URL for this server; ``params`` become the query.

        ``local_hostname=localhost`` is added unless given, so the client never looks up its
        own FQDN.
        """
        scheme = "smtps" if self.implicit_tls else "smtp"
        userinfo = ""
        if user is not None:
            userinfo = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "") + "@"
        query = urlencode({"local_hostname": "localhost", **params})
        return f"{scheme}://{userinfo}{HOST}:{self.port}?{query}"

    def set_reply(self, stage: str, reply: str | None) -> None:
        """Answer ``stage`` with ``reply`` (e.g. ``"550 5.1.1 No such user"``) until reset with None.

        Stages: ``MAIL``, ``RCPT``, ``DATA_COMMAND`` (the reply to DATA itself, instead of 354) and
        ``DATA`` (the reply after the final dot; the message is recorded only for a 2xx reply).
        Without an override the final reply is ``250 2.0.0 Ok: queued as TEST0001`` (numbered).
        A reply starting with 421 also closes the connection, as real servers do.
        """
        if stage not in STAGES and not stage.startswith("RCPT "):  # "RCPT <address>": for that recipient only
            raise ValueError(f"stage must be one of {STAGES}, or 'RCPT <address>'")
        if reply is None:
            self._replies.pop(stage, None)
        else:
            self._replies[stage] = reply

    def reply_for(self, stage: str) -> str | None:
        """The override set for ``stage``, if any (used by the server's hooks)."""
        return self._replies.get(stage)

    def record_transport(self, transport: asyncio.BaseTransport) -> None:
        """Remember ``transport`` so that ``drop_connections`` and ``stop`` can close it."""
        self._transports.append(transport)

    def record_connection(self, smtp: SMTP) -> None:
        """Count ``smtp`` (one per client connection) once; STARTTLS makes it say EHLO twice."""
        if smtp not in self._sessions:
            self._sessions.append(smtp)

    def drop_connections(self) -> None:
        """Close every client connection from the server side, as an idle timeout would."""
        self._close_transports(abort=False)

    def _close_transports(self, *, abort: bool) -> None:
        future = asyncio.run_coroutine_threadsafe(self._close_in_loop(abort), self._controller.loop)
        future.result(timeout=5)

    async def _close_in_loop(self, abort: bool) -> None:
        for transport in self._transports:
            if abort:
                transport.abort()  # a TLS close would wait for the client's close_notify
            elif not transport.is_closing():
                transport.close()
        for _ in range(3):
            await asyncio.sleep(0)  # lets the transports run their connection_lost callbacks

    def start(self) -> SmtpTestServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._close_transports(abort=True)
        self._controller.stop()

    def __enter__(self) -> SmtpTestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _server_tls_context(cert: SelfSignedCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert.cert_path, cert.key_path)
    return context


class _Controller(Controller):
    """Binds port 0 and learns the real port before aiosmtpd's start-up probe connects."""

    def factory(self) -> SMTP:
        return _RecordingSMTP(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class _RecordingSMTP(SMTP):
    """aiosmtpd's SMTP with test hooks: tracking transports, overriding the DATA command's reply,
    and closing the connection after any 421."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.event_handler.server.record_transport(transport)
        super().connection_made(transport)

    async def smtp_DATA(self, arg: str) -> None:
        server: SmtpTestServer = self.event_handler.server
        server.commands.append("DATA")
        override = server.reply_for("DATA_COMMAND")
        if override is not None and self.envelope is not None and self.envelope.rcpt_tos:
            await self.push(override)
            return
        await super().smtp_DATA(arg)

    async def push(self, status: Any) -> None:
        await super().push(status)
        text = status.decode() if isinstance(status, bytes) else status
        if text.startswith("421") and self.transport is not None:
            self.transport.close()


class _Handler:
    """aiosmtpd hooks that record what arrives and answer with the server's overrides."""

    def __init__(self, server: SmtpTestServer, auth: tuple[str, str] | None) -> None:
        self.server = server
        self._credentials = (auth[0].encode(), auth[1].encode()) if auth else None

    def authenticate(self, smtp: SMTP, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == self._credentials
        return AuthResult(success=ok, handled=False)

    async def handle_EHLO(
        self, smtp: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.server.commands.append("EHLO")
        self.server.record_connection(smtp)
        session.host_name = hostname
        if self.server.pipelining:  # aiosmtpd reads pipelined commands in order; it just does not say so
            responses = [*responses[:-1], "250-PIPELINING", responses[-1]]
        if self._credentials is None:
            # aiosmtpd always offers AUTH when it does not require TLS for it.
            return [line for line in responses if not line.startswith("250-AUTH")]
        return responses

    async def handle_MAIL(self, smtp: SMTP, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        self.server.commands.append("MAIL")
        await asyncio.sleep(self.server.mail_delay)
        if self._credentials and not session.authenticated:
            return "530 5.7.0 Authentication required"
        override = self.server.reply_for("MAIL")
        if override is not None:
            return override
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, smtp: SMTP, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        self.server.commands.append("RCPT")
        override = self.server.reply_for(f"RCPT {address}") or self.server.reply_for("RCPT")
        if override is not None:
            return override
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_RSET(self, smtp: SMTP, session: Any, envelope: Any) -> str:
        self.server.commands.append("RSET")
        return "250 OK"

    async def handle_DATA(self, smtp: SMTP, session: Any, envelope: Any) -> str:
        override = self.server.reply_for("DATA")
        if override is not None and not override.startswith("2"):
            return override
        message = ReceivedMessage(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.original_content)
        self.server.messages.append(message)
        return override or f"250 2.0.0 Ok: queued as TEST{len(self.server.messages):04d}"
