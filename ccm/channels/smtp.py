"""Send email over SMTP, with the commit point right before the final dot of DATA.

The SMTP transaction is driven command by command rather than through ``smtplib.sendmail`` so
that everything up to the last step can still be abandoned: until the server reads the ``.``
that ends DATA it discards the message if the connection drops.
"""

from __future__ import annotations

import re
import smtplib
import threading
from collections.abc import Collection, Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from ccm import socket_writes
from ccm.channels.addresses import normalize_email_address
from ccm.channels.base import (
    BatchCommitPoint,
    CommitPoint,
    DeliveryError,
    FinalWrites,
    NoCallbacks,
    OutboundMessage,
    OutcomeUnknownError,
    PermanentDeliveryError,
    ProviderConfigError,
    ProviderLimits,
    Receipt,
    Release,
    TransientDeliveryError,
)
from ccm.channels.smtp_connection import describe_reply, open_connection
from ccm.channels.smtp_settings import DEFAULT_PORTS, STARTTLS_MODES, SmtpSettings, build_tls_context, parse_url

__all__ = [
    "DEFAULT_PORTS",
    "STARTTLS_MODES",
    "SmtpConfig",
    "SmtpProvider",
    "SmtpSettings",
    "classify_reply",
    "parse_url",
]

_MAILBOX_UNKNOWN = re.compile(rb"^\s*5\.1\.[0-9]")
# Replies that mean our credentials or TLS setup are wrong, whichever command they answer.
_CONFIG_CODES = frozenset({530, 534, 535, 538})
_QUEUE_ID = re.compile(rb"queued as ([^\s;]+)", re.IGNORECASE)
_LINE_ENDS = re.compile(rb"\r\n|\r|\n")
_FINAL_DOT = b".\r\n"
"""The end of DATA (RFC 5321 §4.1.1.4): the body before it ends in CRLF (:func:`_data_payload`)."""


class SmtpConfig(BaseModel):
    """Settings of an SMTP provider: the whole ``smtp://`` URL is secret (it carries the password)."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr = Field(description="smtp://user:pass@host:587?starttls=required, or smtps://host:465")
    timeout: float = Field(20.0, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _parses(cls, value: SecretStr) -> SecretStr:
        try:
            parse_url(value.get_secret_value(), timeout=20.0)
        except ProviderConfigError as exc:
            raise ValueError(str(exc)) from None  # the message never includes the password
        return value


class SmtpProvider(NoCallbacks):
    """Delivers ``OutboundMessage.raw`` to one SMTP server, one reused connection per thread.

    EHLO, STARTTLS and AUTH happen once per connection. A connection the server closed while
    idle is noticed at MAIL FROM, before anything was accepted, and replaced once.
    """

    name: ClassVar[str] = "smtp"
    handle_key: str | None = None
    channel: str = "email"
    limits = ProviderLimits()

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._tls_context = build_tls_context(settings)
        self._local = threading.local()
        self._lock = threading.Lock()
        # Strong references: a connection must be QUIT by close() even after its thread ended.
        self._open: set[smtplib.SMTP] = set()

    def __repr__(self) -> str:
        return f"SmtpProvider({self.settings!r})"

    @classmethod
    def from_config(cls, config: SmtpConfig) -> SmtpProvider:
        return cls.from_url(config.url.get_secret_value(), timeout=config.timeout)

    def normalize_address(self, address: str) -> str:
        return normalize_email_address(address)

    def check(self) -> None:
        """Connect, say EHLO, secure and authenticate as a send would, then QUIT."""
        conn = open_connection(self.settings, self._tls_context)
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            pass

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 20.0) -> SmtpProvider:
        """Build a provider from ``smtp://[user:pass@]host[:port][?options]`` or ``smtps://...``.

        Options: ``starttls=opportunistic|required|off`` (smtp only), ``cafile=/path``,
        ``verify=true|false``, ``local_hostname=name``. ``smtp`` defaults to port 25 and
        ``smtps`` (implicit TLS) to 465; user and password are percent-decoded.

        Raises:
          ProviderConfigError: the URL is malformed or names an unknown option or a missing cafile.
        """
        return cls(parse_url(url, timeout=timeout))

    def send(self, message: OutboundMessage, *, commit_point: CommitPoint) -> Receipt:
        """Send ``message.raw`` from ``message.envelope_from`` to ``message.to``.

        ``commit_point`` is called once, after the server accepted DATA and the body is on the
        wire but before the final dot; if it raises, the connection is dropped without the dot,
        so the server discards the message, and the exception propagates.

        Raises:
          TransientDeliveryError: network trouble or a 4xx reply; try again later.
          OutcomeUnknownError: the connection failed after the final dot was sent.
          PermanentDeliveryError: a 5xx reply (``rejected`` for RCPT/DATA, ``sender_rejected``
            for MAIL FROM), or an address SMTP cannot carry.
          ProviderConfigError: authentication or TLS is misconfigured.
        """

        def only_this(ids: Sequence[str], release: Release) -> Sequence[str]:
            commit_point()
            return ids

        result = self.send_batch([message], commit_point=only_this)[message.message_id]
        if isinstance(result, DeliveryError):
            raise result
        return result

    def send_batch(
        self, messages: Sequence[OutboundMessage], *, commit_point: BatchCommitPoint
    ) -> dict[str, Receipt | DeliveryError]:
        """Send several messages at once, one connection each, with one commit point for all.

        Every message goes as far as its body, final dot held back; then ``commit_point`` gets
        the ids that got that far and answers those this run may finish (still owned). Only
        those get their dot — written to every connection before any reply is read, when the
        commit point releases them (the instant its record left for the database) or else right
        after it returns. A message the commit point does not return is abandoned without its
        dot. If the commit point raises, nothing is finished and the exception propagates.

        Returns:
          By message id, a receipt or the error that message met (the errors of :meth:`send`);
          messages abandoned after the commit point are absent.
        """
        results: dict[str, Receipt | DeliveryError] = {}
        staged = self._stage_all(messages, results)
        written: list[tuple[OutboundMessage, smtplib.SMTP]] | None = None

        def release(ids: Collection[str]) -> FinalWrites:
            wanted = set(ids)
            finishing = [(message, conn) for message, conn in staged if message.message_id in wanted]

            def done(failed: dict[int, OSError]) -> None:
                nonlocal written
                written = self._after_dots(finishing, failed, results)

            return FinalWrites([(conn.sock, _FINAL_DOT) for _, conn in finishing], done)

        try:
            owned = set(commit_point([message.message_id for message, _ in staged], release)) if staged else set()
        except BaseException:
            for _, conn in staged:
                self._drop(conn)
            raise
        if written is None:
            finals = release(owned)
            finals.done(socket_writes.write_each(finals.writes))
        for message, conn in staged:
            if message.message_id not in owned:
                self._drop(conn)  # no longer ours: without the dot, the server discards it
        for message, conn in written or []:
            results[message.message_id] = self._end_of_data(conn, message)
        return results

    def close(self) -> None:
        """Say QUIT on every connection this provider opened, in any thread."""
        with self._lock:
            connections = list(self._open)
            self._open.clear()
        # Other threads find their connection closed (sock is None) and open a new one.
        for conn in connections:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()
        self._local.conns = []

    def _connection(self, slot: int) -> tuple[smtplib.SMTP, bool]:
        """This thread's connection number ``slot`` and whether it was used before."""
        conns: list[smtplib.SMTP | None] = self._conns()
        while len(conns) <= slot:
            conns.append(None)
        conn = conns[slot]
        if conn is not None and conn.sock is not None:
            return conn, True
        conn = open_connection(self.settings, self._tls_context)
        conns[slot] = conn
        with self._lock:
            self._open.add(conn)
        return conn, False

    def _conns(self) -> list[smtplib.SMTP | None]:
        if not hasattr(self._local, "conns"):
            self._local.conns = []
        return self._local.conns

    def _drop(self, conn: smtplib.SMTP) -> None:
        """Close without QUIT; used when the connection is broken or must not finish DATA."""
        conn.close()
        with self._lock:
            self._open.discard(conn)
        conns = self._conns()
        for slot, held in enumerate(conns):
            if held is conn:
                conns[slot] = None

    def _stage_all(
        self, messages: Sequence[OutboundMessage], results: dict[str, Receipt | DeliveryError]
    ) -> list[tuple[OutboundMessage, smtplib.SMTP]]:
        """Every message up to its final dot, each on its own connection; the errors into ``results``.

        Where the server pipelines, every envelope is written before any reply is read, so the
        batch waits for one round trip instead of one per message."""
        staged: list[tuple[OutboundMessage, smtplib.SMTP]] = []
        written = []
        for slot, message in enumerate(messages):
            try:
                payload = _data_payload(message)
                conn, reused = self._connection(slot)
                if not conn.has_extn("pipelining"):
                    staged.append((message, self._stage_on(slot, message, payload, conn, reused=reused)))
                elif self._wrote_envelope(conn, message, len(payload), reused=reused):
                    written.append((slot, message, payload, conn, reused))
                else:
                    staged.append((message, self._stage(slot, message)))  # its reused connection was closed
            except DeliveryError as error:
                results[message.message_id] = error
        for slot, message, payload, conn, reused in written:
            try:
                staged.append((message, self._finish_stage(slot, message, payload, conn, reused=reused)))
            except DeliveryError as error:
                results[message.message_id] = error
        return staged

    def _wrote_envelope(self, conn: smtplib.SMTP, message: OutboundMessage, size: int, *, reused: bool) -> bool:
        """MAIL, RCPT and DATA written in one go, replies not read; False when a reused connection
        turned out closed (dropped: the message is to be staged on a fresh one)."""
        try:
            conn.send(_envelope(conn, message, size))
            return True
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop(conn)
            if reused:
                return False
            raise TransientDeliveryError(f"SMTP connection failed: {exc}", reason="network_error") from exc

    def _finish_stage(
        self, slot: int, message: OutboundMessage, payload: bytes, conn: smtplib.SMTP, *, reused: bool
    ) -> smtplib.SMTP:
        """The replies to an envelope written by :meth:`_wrote_envelope`, then the body."""
        try:
            self._envelope_replies(conn, reused=reused)
            conn.send(payload)
            return conn
        except _StaleConnection:
            self._drop(conn)
            return self._stage(slot, message)  # on a fresh connection
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop(conn)
            raise TransientDeliveryError(f"SMTP connection failed: {exc}", reason="network_error") from exc

    def _stage(self, slot: int, message: OutboundMessage) -> smtplib.SMTP:
        """MAIL, RCPT, DATA and the body on connection ``slot``, up to (not including) the final dot."""
        conn, reused = self._connection(slot)
        return self._stage_on(slot, message, _data_payload(message), conn, reused=reused)

    def _stage_on(
        self, slot: int, message: OutboundMessage, payload: bytes, conn: smtplib.SMTP, *, reused: bool
    ) -> smtplib.SMTP:
        """:meth:`_stage` on ``conn``, or on a fresh connection if ``conn`` was found closed."""
        try:
            self._begin_data(conn, message, payload, reused=reused)
            return conn
        except _StaleConnection:
            self._drop(conn)  # the next connection is fresh, so this retries at most once
            return self._stage(slot, message)

    def _begin_data(self, conn: smtplib.SMTP, message: OutboundMessage, payload: bytes, *, reused: bool) -> None:
        try:
            if conn.has_extn("pipelining"):
                self._pipelined_envelope(conn, message, len(payload), reused=reused)
            else:
                self._mail_from(conn, message.envelope_from, len(payload), reused=reused)
                self._expect(conn, "RCPT TO", conn.rcpt(message.to), (250, 251))
                self._expect(conn, "DATA", conn.docmd("DATA"), (354,))
            conn.send(payload)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop(conn)
            raise TransientDeliveryError(f"SMTP connection failed: {exc}", reason="network_error") from exc

    def _after_dots(
        self,
        staged: list[tuple[OutboundMessage, smtplib.SMTP]],
        failed: dict[int, OSError],
        results: dict[str, Receipt | DeliveryError],
    ) -> list[tuple[OutboundMessage, smtplib.SMTP]]:
        """The connections whose final dot was written; those whose write failed get an unknown
        outcome, dealt with after the last dot went out."""
        written = []
        for n, (message, conn) in enumerate(staged):
            if n not in failed:
                written.append((message, conn))
                continue
            self._drop(conn)
            results[message.message_id] = OutcomeUnknownError(f"SMTP connection failed at the end of DATA: {failed[n]}")
        return written

    def _pipelined_envelope(self, conn: smtplib.SMTP, message: OutboundMessage, size: int, *, reused: bool) -> None:
        """MAIL, RCPT and DATA in one write, then their three replies (RFC 2920): one round trip
        instead of three. The addresses were checked by :func:`_data_payload` (ASCII, no <>)."""
        try:
            conn.send(_envelope(conn, message, size))
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            if reused:
                raise _StaleConnection from exc
            raise
        self._envelope_replies(conn, reused=reused)

    def _envelope_replies(self, conn: smtplib.SMTP, *, reused: bool) -> None:
        """The replies to a pipelined MAIL, RCPT and DATA, each checked."""
        replies: list[tuple[int, bytes]] = []
        try:
            while len(replies) < 3 and (not replies or replies[-1][0] != 421):  # 421: the server is closing
                replies.append(conn.getreply())
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            if reused and not replies:
                raise _StaleConnection from exc
            raise
        if replies[0][0] == 421 and reused:
            raise _StaleConnection  # the idle-timeout notice, read only now
        if len(replies) == 3 and replies[2][0] == 354 and (replies[0][0] != 250 or replies[1][0] not in (250, 251)):
            self._drop(conn)  # a server that takes DATA without a sender or recipient: never send to it
            raise TransientDeliveryError(
                "SMTP server accepted DATA after refusing MAIL or RCPT", reason="protocol_error"
            )
        for stage, reply, ok in zip(
            ("MAIL FROM", "RCPT TO", "DATA"), replies, ((250,), (250, 251), (354,)), strict=False
        ):
            self._expect(conn, stage, reply, ok)

    def _mail_from(self, conn: smtplib.SMTP, sender: str, size: int, *, reused: bool) -> None:
        """MAIL FROM, where a reused connection the server closed while idle shows up as stale."""
        # SIZE lets a server refuse an oversized message now rather than after the whole upload.
        options = [f"SIZE={size}"] if conn.has_extn("size") else []
        try:
            reply = conn.mail(sender, options)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            if reused:
                raise _StaleConnection from exc
            raise
        if reply[0] == 421 and reused:
            raise _StaleConnection  # the idle-timeout notice, read only now
        self._expect(conn, "MAIL FROM", reply, (250,))

    def _end_of_data(self, conn: smtplib.SMTP, message: OutboundMessage) -> Receipt | DeliveryError:
        """The server's answer to the final dot."""
        try:
            reply = conn.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop(conn)
            # The server may have queued the message before the connection broke.
            return OutcomeUnknownError(f"SMTP connection failed after the end of DATA: {exc}")
        try:
            self._expect(conn, "end of DATA", reply, (250,))
        except DeliveryError as error:
            return error
        found = _QUEUE_ID.search(reply[1])
        if found:
            return Receipt(provider_message_id=found.group(1).decode("ascii", "replace"))
        return Receipt(provider_message_id=message.headers.get("Message-ID"))

    def _expect(self, conn: smtplib.SMTP, stage: str, reply: tuple[int, bytes], ok: tuple[int, ...]) -> None:
        """Raise the classified error for an unexpected reply, leaving the connection reusable."""
        if reply[0] in ok:
            return
        error = classify_reply(stage, *reply)
        # 421 announces that the server is closing; a non-SMTP code means we lost the thread.
        if reply[0] == 421 or not 400 <= reply[0] < 600:
            self._drop(conn)
        else:
            self._reset(conn)
        raise error

    def _reset(self, conn: smtplib.SMTP) -> None:
        try:
            if conn.rset()[0] == 250:
                return
        except (smtplib.SMTPException, OSError):
            pass
        self._drop(conn)


class _StaleConnection(Exception):
    """A reused connection was found closed at MAIL FROM; nothing was sent yet."""


def classify_reply(stage: str, code: int, text: bytes) -> DeliveryError:
    """The delivery error for an SMTP reply ``code`` to ``stage`` (``MAIL FROM``, ``RCPT TO``...)."""
    detail = f"SMTP {stage} answered {describe_reply((code, text))}"
    if code in _CONFIG_CODES:
        return ProviderConfigError(detail, reason="auth_failed")
    if 400 <= code < 500:
        return TransientDeliveryError(detail, reason="deferred")
    if 500 <= code < 600:
        if stage == "MAIL FROM":
            return PermanentDeliveryError(detail, reason="sender_rejected")
        # 5.1.x enhanced codes (and bare 550/551/553 at RCPT) say the mailbox does not exist: a hard bounce.
        if _MAILBOX_UNKNOWN.match(text) or (stage == "RCPT TO" and code in (550, 551, 553)):
            return PermanentDeliveryError(detail, reason="invalid_address")
        return PermanentDeliveryError(detail, reason="rejected")
    return TransientDeliveryError(detail, reason="protocol_error")


def _data_payload(message: OutboundMessage) -> bytes:
    """The DATA body, CRLF-normalised and dot-stuffed, ending in CRLF but without the final dot.

    Bare CR or LF are normalised because servers disagree on them (the SMTP smuggling attacks).
    """
    for address in (message.envelope_from, message.to):
        if not address.isascii() or any(char in address for char in "\r\n<>"):
            raise PermanentDeliveryError(f"SMTP cannot carry the address {address!r}", reason="invalid_address")
    if not message.raw:
        raise PermanentDeliveryError("the message has no raw content", reason="invalid_message")
    raw = message.raw
    if raw.count(b"\n") != raw.count(b"\r\n") or raw.count(b"\r") != raw.count(b"\r\n"):
        raw = _LINE_ENDS.sub(b"\r\n", raw)  # the MIME builder writes CRLF already: this is rare
    data = raw.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def _envelope(conn: smtplib.SMTP, message: OutboundMessage, size: int) -> bytes:
    """MAIL, RCPT and DATA as one pipelined write (the addresses were checked by :func:`_data_payload`)."""
    options = f" SIZE={size}" if conn.has_extn("size") else ""
    return f"MAIL FROM:<{message.envelope_from}>{options}\r\nRCPT TO:<{message.to}>\r\nDATA\r\n".encode("ascii")
