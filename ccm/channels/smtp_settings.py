"""Settings of the SMTP provider: parsing its ``smtp://`` URL and building its TLS context."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from ccm.channels.base import ProviderConfigError

DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
STARTTLS_MODES = ("opportunistic", "required", "off")
_QUERY_KEYS = frozenset({"starttls", "cafile", "verify", "local_hostname"})
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to connect; parsed from a URL by :meth:`ccm.channels.smtp.SmtpProvider.from_url`."""

    host: str
    port: int
    implicit_tls: bool = False
    starttls: str = "opportunistic"
    username: str | None = None
    password: str | None = None
    cafile: str | None = None
    verify: bool = True
    local_hostname: str | None = None
    timeout: float = 20.0

    def __repr__(self) -> str:
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.username}:***@" if self.username else ""
        return f"SmtpSettings({scheme}://{user}{self.host}:{self.port}, starttls={self.starttls})"


def parse_url(url: str, *, timeout: float = 20.0) -> SmtpSettings:
    """Parse an ``smtp://`` or ``smtps://`` URL into settings; see :meth:`ccm.channels.smtp.SmtpProvider.from_url`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ProviderConfigError(f"invalid SMTP URL: {exc}") from exc
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ProviderConfigError("SMTP URL must look like smtp://[user:pass@]host[:port] or smtps://...")
    options = _query_options(parts.query)
    implicit_tls = parts.scheme == "smtps"
    starttls = options.get("starttls", "off" if implicit_tls else "opportunistic")
    if starttls not in STARTTLS_MODES or (implicit_tls and starttls != "off"):
        raise ProviderConfigError(f"starttls must be one of {STARTTLS_MODES} (and off for smtps)")
    if parts.password is not None and not parts.username:
        raise ProviderConfigError("SMTP URL has a password but no user")
    return SmtpSettings(
        host=parts.hostname,
        port=port or DEFAULT_PORTS[parts.scheme],
        implicit_tls=implicit_tls,
        starttls=starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        cafile=options.get("cafile"),
        verify=_parse_bool(options.get("verify", "true")),
        local_hostname=options.get("local_hostname"),
        timeout=timeout,
    )


def build_tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    """The TLS context for STARTTLS or implicit TLS, honouring ``cafile`` and ``verify``.

    Raises:
      ProviderConfigError: the cafile cannot be loaded.
    """
    try:
        context = ssl.create_default_context(cafile=settings.cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ProviderConfigError(f"cannot load cafile {settings.cafile!r}: {exc}") from exc
    if not settings.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _query_options(query: str) -> dict[str, str]:
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = set(options) - _QUERY_KEYS
    if unknown:
        raise ProviderConfigError(f"unknown SMTP URL options: {', '.join(sorted(unknown))}")
    return options


def _parse_bool(value: str) -> bool:
    try:
        return _BOOLEANS[value.lower()]
    except KeyError:
        raise ProviderConfigError(f"verify must be true or false, not {value!r}") from None
