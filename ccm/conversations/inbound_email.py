"""Parse an inbound email — a reply or a bounce — into plain values; no database, no network.

Mail from the outside is often malformed: headers carry raw 8-bit text, charsets are mislabelled or
unknown, MIME boundaries are missing. Everything here is lenient and best effort; only bytes with
no message header at all are refused (``MalformedEmail``). Header and charset decoding live in
``mime``, bounces in ``dsn``, quoted-history stripping in ``quotes``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.utils import getaddresses

from ccm.channels.html_text import html_to_text
from ccm.conversations.dsn import Dsn, DsnRecipient, is_bounce, parse_dsn
from ccm.conversations.mime import POLICY, all_headers, header, leaves, message_ids, normalize_newlines, part_text
from ccm.conversations.quotes import strip_quoted

__all__ = ["Dsn", "DsnRecipient", "MalformedEmail", "ParsedEmail", "parse_email", "reply_address_token"]

_CORE_FIELDS = (
    "from",
    "sender",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "received",
    "return-path",
    "mime-version",
    "content-type",
    "delivered-to",
)
_RECIPIENT_FIELDS = ("To", "Cc", "Delivered-To", "X-Original-To")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_AUTO_PRECEDENCE = ("bulk", "junk", "list", "auto_reply")


class MalformedEmail(ValueError):
    """The bytes are not an email message: no header fields an email has."""


@dataclass(frozen=True)
class ParsedEmail:
    """What CCM needs from an inbound email; see ``parse_email``."""

    message_id: str | None
    from_address: str
    from_name: str
    to_addresses: tuple[str, ...]
    subject: str
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    text: str
    full_text: str
    auto_submitted: bool
    dsn: Dsn | None


def parse_email(raw: bytes) -> ParsedEmail:
    """Parse ``raw`` (a complete RFC 5322 message) into a ``ParsedEmail``.

    ``text`` is the reply's own words: the text/plain part (else the HTML part as text) without
    quoted history and signature. ``auto_submitted`` is also true for every bounce.

    Raises:
      MalformedEmail: ``raw`` has none of the header fields an email has.
    """
    if b"\0" in raw:
        raise MalformedEmail("NUL bytes are not allowed in an email (RFC 5322)")
    message = _parse(raw)
    from_name, from_address = _address(header(message, "From"))
    from_address = _clean(from_address.lower())[:320]
    full_text = _clean(_body_text(message))
    dsn = parse_dsn(message, full_text) if is_bounce(message, from_name, from_address) else None
    return ParsedEmail(
        message_id=next(iter(message_ids(_clean(header(message, "Message-ID")))), None),
        from_address=from_address,
        from_name=_clean(from_name),
        to_addresses=tuple(_clean(address)[:320] for address in _recipients(message)),
        subject=_clean(header(message, "Subject"))[:500],
        in_reply_to=message_ids(_clean(header(message, "In-Reply-To"))),
        references=message_ids(_clean(header(message, "References"))),
        text=strip_quoted(full_text),
        full_text=full_text,
        auto_submitted=dsn is not None or _is_auto_submitted(message),
        dsn=dsn,
    )


def _clean(text: str) -> str:
    """Decoded text as a column can hold it: NULs dropped, undecodable bytes (lone surrogates
    from a mislabelled charset) replaced — mail from outside is kept, not refused, for those."""
    return _UNSTORABLE.sub(lambda found: "" if found.group() == "\0" else "\ufffd", text)


def reply_address_token(address: str, *, domain: str) -> str | None:
    """The token of ``reply+<token>@domain`` (local part prefix matched case-insensitively);
    None for any other address. ``address`` may carry a display name."""
    local, _, address_domain = _address(address)[1].rpartition("@")
    if address_domain.lower().rstrip(".") != domain.lower().rstrip("."):
        return None
    if not local.lower().startswith("reply+") or len(local) == len("reply+"):
        return None
    return local[len("reply+") :]


def _parse(raw: bytes) -> Message:
    try:
        message = message_from_bytes(raw, policy=POLICY)
    except RecursionError:
        raise MalformedEmail("MIME structure nested too deeply") from None
    if not any(name.lower() in _CORE_FIELDS for name in message):
        raise MalformedEmail("no email header fields")
    return message


def _address(value: str) -> tuple[str, str]:
    """(display name, address) of the first address in ``value``."""
    name, address = next(iter(_parse_addresses([value])), ("", ""))
    return name.strip(), address.strip()


def _recipients(message: Message) -> tuple[str, ...]:
    values = [value for name in _RECIPIENT_FIELDS for value in all_headers(message, name)]
    addresses = (_lower_domain(address.strip()) for _, address in _parse_addresses(values))
    unique: dict[str, str] = {}
    for address in addresses:
        if "@" in address:
            unique.setdefault(address.lower(), address)  # the first spelling of each address
    return tuple(unique.values())


def _lower_domain(address: str) -> str:
    """Domains are case-insensitive; local parts may not be (reply tokens are in them)."""
    local, at, domain = address.rpartition("@")
    return f"{local}{at}{domain.lower()}"


def _parse_addresses(values: list[str]) -> list[tuple[str, str]]:
    try:
        return getaddresses(values)
    except RecursionError:  # the stdlib recurses once per nested comment: "((((((..."
        return []


def _is_auto_submitted(message: Message) -> bool:
    """RFC 3834 Auto-Submitted plus the older conventions vacation responders still use."""
    auto = header(message, "Auto-Submitted").partition(";")[0].strip().lower()
    if auto not in ("", "no"):
        return True
    if header(message, "Precedence").lower() in _AUTO_PRECEDENCE:
        return True
    return any(
        message.get(name) is not None and header(message, name).lower() != "no"
        for name in ("X-Autoreply", "X-Autorespond")
    )


def _body_text(message: Message) -> str:
    """The first inline text/plain part, else the first inline text/html part as text."""
    html = None
    for part in leaves(message):
        if part.get_content_disposition() == "attachment":
            continue
        if part.get_content_type() == "text/plain":
            return normalize_newlines(part_text(part))
        if part.get_content_type() == "text/html" and html is None:
            html = part
    return normalize_newlines(html_to_text(part_text(html))) if html is not None else ""
