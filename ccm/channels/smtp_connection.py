"""Opening an SMTP connection as a send needs it: connect, EHLO, STARTTLS, AUTH, with every
failure classified into the delivery errors (none of them is about a message)."""

from __future__ import annotations

import smtplib
import socket
import ssl
from functools import cache

from ccm.channels.base import DeliveryError, ProviderConfigError, TransientDeliveryError
from ccm.channels.smtp_settings import SmtpSettings


def describe_reply(reply: tuple[int, bytes | str]) -> str:
    text = reply[1].decode("utf-8", "replace") if isinstance(reply[1], bytes) else reply[1]
    return f"{reply[0]} {text}"


def open_connection(settings: SmtpSettings, context: ssl.SSLContext) -> smtplib.SMTP:
    """Connect, say EHLO, secure and authenticate, raising the classified error on failure."""
    conn: smtplib.SMTP | None = None
    try:
        conn = _connect(settings, context)
        assert conn.sock is not None, "connected"
        # The final "." goes out as its own small write after the commit point; with Nagle's
        # algorithm it would wait for the server's delayed ACK (~40 ms) on every message.
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _secure_and_login(conn, settings, context)
        return conn
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, DeliveryError) or not isinstance(exc, Exception):
            raise
        raise _connection_error(settings, exc) from exc


def _connect(settings: SmtpSettings, context: ssl.SSLContext) -> smtplib.SMTP:
    local_hostname = settings.local_hostname or _local_fqdn()
    if settings.implicit_tls:
        return smtplib.SMTP_SSL(
            settings.host,
            settings.port,
            local_hostname=local_hostname,
            timeout=settings.timeout,
            context=context,
        )
    return smtplib.SMTP(settings.host, settings.port, local_hostname=local_hostname, timeout=settings.timeout)


def _secure_and_login(conn: smtplib.SMTP, settings: SmtpSettings, context: ssl.SSLContext) -> None:
    conn.ehlo()
    if not settings.implicit_tls and settings.starttls != "off":
        if conn.has_extn("starttls"):
            conn.starttls(context=context)
            conn.ehlo()
        elif settings.starttls == "required":
            raise ProviderConfigError(f"{settings.host} does not offer STARTTLS", reason="tls_unavailable")
    if settings.username is None:
        return
    if not conn.has_extn("auth"):
        raise ProviderConfigError(f"{settings.host} does not offer AUTH", reason="auth_unavailable")
    conn.login(settings.username, settings.password or "")


def _connection_error(settings: SmtpSettings, exc: Exception) -> DeliveryError:
    """Classify a failure while connecting, securing or authenticating.

    None of these is about the message, so none is permanent: a 5xx here (greeting, EHLO,
    STARTTLS, AUTH) means the server will not take mail from us as configured.
    """
    where = f"SMTP {settings.host}:{settings.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ProviderConfigError(f"{where}: TLS certificate rejected: {exc}", reason="tls_verification")
    if isinstance(exc, smtplib.SMTPResponseException):
        detail = f"{where}: {type(exc).__name__}: {describe_reply((exc.smtp_code, exc.smtp_error))}"
        if 400 <= exc.smtp_code < 500:
            return TransientDeliveryError(detail, reason="deferred")
        reason = "auth_failed" if isinstance(exc, smtplib.SMTPAuthenticationError) else "refused"
        return ProviderConfigError(detail, reason=reason)
    if isinstance(exc, smtplib.SMTPException) and "authentication method" in str(exc):
        return ProviderConfigError(f"{where}: {exc}", reason="auth_failed")
    return TransientDeliveryError(f"{where}: {type(exc).__name__}: {exc}", reason="network_error")


@cache
def _local_fqdn() -> str:
    """What smtplib would say in EHLO, looked up once per process rather than per connection."""
    return socket.getfqdn()
