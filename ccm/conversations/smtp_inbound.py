"""An SMTP listener for replies and bounces addressed to CCM's own domains.

It accepts mail only for the configured domains (no relay, no AUTH) and hands each message's raw
bytes to a callback. The callback's success is the only thing that turns into ``250``: when it
raises, the sender gets ``451`` and keeps the message in its queue to retry, so nothing is lost —
but a message may arrive more than once, and handlers must be idempotent.

aiosmtpd is needed at runtime here, not only in tests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger(__name__)

InboundHandler = Callable[[bytes, str, tuple[str, ...]], None]
"""Called as ``handler(raw, mail_from, rcpt_tos)``; ``mail_from`` is ``""`` for bounces (``<>``)."""


class InboundSmtpServer:
    """aiosmtpd Controller accepting mail for configured domains, handing each message's raw bytes to a callback.

    Parameters:
      handler: runs in a worker thread, once per accepted message, with the exact bytes received
        (dot-unstuffed) and the envelope. Raising answers ``451 4.3.0``.
      host, port: where to listen; port 0 picks a free port (see ``port``).
      domains: recipient domains accepted (case-insensitive, exact: no subdomains). Any other
        recipient gets ``550 5.7.1``.
      max_size: larger messages get ``552``, at MAIL FROM when the client declares SIZE, else
        after DATA.
      server_hostname: the name in the greeting; the machine's FQDN (a DNS lookup) when None.
    """

    def __init__(
        self,
        handler: InboundHandler,
        *,
        host: str,
        port: int,
        domains: Iterable[str],
        max_size: int = 10_000_000,
        server_hostname: str | None = None,
    ) -> None:
        accepted = frozenset(domain.lower().rstrip(".") for domain in domains)
        self._controller = _Controller(
            _Hooks(handler, accepted),
            hostname=host,
            port=port,
            data_size_limit=max_size,
            server_hostname=server_hostname,
            enable_SMTPUTF8=True,
        )

    @property
    def port(self) -> int:
        """The port listened on; the real one once started, when 0 was given."""
        return self._controller.port

    def start(self) -> None:
        """Bind and serve in a background thread; returns once connections are accepted."""
        self._controller.start()

    def stop(self) -> None:
        """Close the listener and every connection; a message whose handler is still running
        gets no reply, so its sender retries it later."""
        self._controller.stop()


class _Controller(Controller):
    """Learns the real port (when 0 was given) before aiosmtpd's start-up probe connects to it."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)  # aiosmtpd declares an AbstractServer, which has no sockets
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class _Hooks:
    """aiosmtpd handler hooks: recipient check at RCPT, the callback at DATA."""

    def __init__(self, handler: InboundHandler, domains: frozenset[str]) -> None:
        self._handler = handler
        self._domains = domains

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.rpartition("@")[2].lower().rstrip(".") not in self._domains:
            return "550 5.7.1 Relaying denied"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        mail_from = "" if envelope.mail_from in (None, "<>") else envelope.mail_from
        rcpt_tos = tuple(envelope.rcpt_tos)
        try:
            # In a thread: a handler writing to the database must not stall the other connections.
            await asyncio.get_running_loop().run_in_executor(None, self._handler, raw, mail_from, rcpt_tos)
        except Exception:
            log.exception(
                "inbound mail handler failed; answered 451 (from=%r, to=%r, %d bytes)", mail_from, rcpt_tos, len(raw)
            )
            return "451 4.3.0 Temporary failure processing the message, try again later"
        return "250 2.0.0 OK"
