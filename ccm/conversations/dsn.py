"""Read a bounce: an RFC 3464 delivery status notification, or a plain-text bounce best effort."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from ccm.conversations.mime import (
    header,
    leaves,
    message_ids,
    normalize_newlines,
    param,
    parse_header_block,
    part_text,
    subparts,
)

_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
_ORIGINAL_TYPES = (
    "message/rfc822",
    "message/global",
    "text/rfc822-headers",
    "message/global-headers",
    "message/rfc822-headers",
)
_BOUNCE_SENDERS = ("mailer-daemon", "mailerdaemon", "mail-daemon", "postmaster")
_MAX_BOUNCE_LINE = 1000

_CCM_ID = re.compile(r"^(msg_[0-9A-Za-z]+)@")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_REPLY = re.compile(r"\b([245])\d\d[ -]")
# The lookbehind and possessive quantifiers keep the search linear on long runs of address characters.
_ADDRESS = re.compile(
    r"(?<![A-Za-z0-9.!#$%&'*+/=?^_`{|}~-])([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}+"
    r"@[A-Za-z0-9-]{1,63}+(?:\.[A-Za-z0-9-]{1,63}+)++)"
)
_ADDRESS_LINE = re.compile(r"^\s*<?([^\s<>@]+@[^\s<>@]+?)>?:?\s*$")
_DELAY_WORDS = re.compile(r"delay|will (?:keep )?(?:re)?try|not yet been delivered|warning", re.IGNORECASE)
_TEXT_HEADER = {
    "message-id": re.compile(r"^[ \t]*Message-ID:\s*<([^<>\s]+)>", re.IGNORECASE | re.MULTILINE),
    "x-ccm-message-id": re.compile(r"^[ \t]*X-CCM-Message-Id:\s*(\S+)", re.IGNORECASE | re.MULTILINE),
}


@dataclass(frozen=True)
class DsnRecipient:
    """One recipient of a delivery status notification; ``permanent`` is a hard bounce."""

    address: str
    action: str
    status: str
    diagnostic: str
    permanent: bool


@dataclass(frozen=True)
class Dsn:
    """A delivery status notification (RFC 3464, or a plain-text bounce read best effort)."""

    original_message_id: str | None
    ccm_message_id: str | None
    recipients: tuple[DsnRecipient, ...]


def is_bounce(message: Message, from_name: str, from_address: str) -> bool:
    """A report with report-type=delivery-status, or a non-report message from a mailer daemon.

    Other reports (read receipts, abuse feedback) are not bounces even from a mailer daemon.
    """
    if message.get_content_type() == "multipart/report":
        return param(message, "report-type") == "delivery-status"
    local_part = from_address.partition("@")[0]
    name = from_name.lower()
    return local_part in _BOUNCE_SENDERS or "mail delivery" in name or "mailer-daemon" in name


def parse_dsn(message: Message, text: str) -> Dsn:
    """Read the bounce ``message``, whose body text is ``text``.

    Recipients come from the status part, else from ``text``; the original's ids from the returned
    headers part, else from headers quoted in ``text``.
    """
    recipients = _status_recipients(message) or _text_recipients(text)
    original = _original_headers(message)
    if original is not None:
        message_id = next(iter(message_ids(header(original, "Message-ID"))), None)
        ccm_header = header(original, "X-CCM-Message-Id") or None
    else:  # a plain-text bounce often quotes the original's headers in its text
        found = {name: pattern.search(text) for name, pattern in _TEXT_HEADER.items()}
        message_id = found["message-id"] and found["message-id"].group(1)
        ccm_header = found["x-ccm-message-id"] and found["x-ccm-message-id"].group(1)
    from_id = _CCM_ID.match(message_id or "")
    return Dsn(
        original_message_id=message_id or ccm_header,
        ccm_message_id=ccm_header or (from_id.group(1) if from_id else None),
        recipients=recipients,
    )


def _status_recipients(message: Message) -> tuple[DsnRecipient, ...]:
    part = next((leaf for leaf in leaves(message) if leaf.get_content_type() in _STATUS_TYPES), None)
    if part is None:
        return ()
    found = (_status_recipient(block) for block in _status_blocks(part))
    return tuple(recipient for recipient in found if recipient is not None)


def _status_blocks(part: Message) -> list[Message]:
    """The header blocks of a status part: one per message, then one per recipient."""
    if part.get_content_type() == "message/delivery-status":
        return subparts(part)  # the parser splits these itself
    # The parser reads any other message/* type as one embedded message: its headers are the
    # first block and its body holds the rest.
    first = subparts(part)[:1]
    rest = part_text(first[0]) if first else part_text(part)
    chunks = re.split(r"\n[ \t]*\n", normalize_newlines(rest))
    return first + [parse_header_block(chunk) for chunk in chunks]


def _status_recipient(block: Message) -> DsnRecipient | None:
    # Original-Recipient is the address as CCM sent it, before any forwarding rewrote it.
    address = _typed_value(header(block, "Original-Recipient")) or _typed_value(header(block, "Final-Recipient"))
    address = address.strip("<>").lower()
    if "@" not in address:
        return None
    action = header(block, "Action").lower()
    diagnostic = _typed_value(header(block, "Diagnostic-Code") or header(block, "X-Exim-Diagnostic"))
    status = _status_code(header(block, "Status")) or _status_code(diagnostic)
    return DsnRecipient(
        address=address,
        action=action,
        status=status,
        diagnostic=diagnostic,
        permanent=action == "failed" and status.startswith("5"),
    )


def _typed_value(value: str) -> str:
    """``"rfc822; user@x"`` → ``"user@x"``; whitespace from folding collapsed."""
    kind, sep, rest = value.partition(";")
    return " ".join((rest if sep and " " not in kind.strip() else value).split())


def _status_code(text: str) -> str:
    match = _STATUS.search(text)
    if match:
        return ".".join(match.groups())
    reply = _SMTP_REPLY.search(text)
    return f"{reply.group(1)}.0.0" if reply else ""


def _text_recipients(text: str) -> tuple[DsnRecipient, ...]:
    """Recipients of a bounce without a status part, from its human-readable text.

    Recognised: a line with both a reply code and an address (``550 5.1.1 <u@x>: Recipient address
    rejected``), and an address alone on a line followed, before the next blank line, by a line with a
    reply code (qmail, Exim's text bounces). Anything else yields no recipients.
    """
    # A 5xx never means "delayed"; the words are only trusted for 4xx, as bounces quote the
    # original message, whose text may say anything.
    transient_action = "delayed" if _DELAY_WORDS.search(text) else "failed"
    found: dict[str, DsnRecipient] = {}
    lines = [line[:_MAX_BOUNCE_LINE] for line in text.split("\n")]
    for index, line in enumerate(lines):
        address_only = _ADDRESS_LINE.match(line)
        if address_only:
            address, detail = address_only.group(1).lower(), _next_coded_line(lines[index + 1 : index + 6])
        else:
            address_match = _status_code(line) and _ADDRESS.search(line)
            address, detail = (address_match.group(1).lower(), line) if address_match else ("", "")
        status = _status_code(detail)
        if address and status and address not in found:
            permanent = status.startswith("5")
            found[address] = DsnRecipient(
                address=address,
                action="failed" if permanent else transient_action,
                status=status,
                diagnostic=" ".join(detail.split()),
                permanent=permanent,
            )
    return tuple(found.values())


def _next_coded_line(lines: list[str]) -> str:
    for line in lines:
        if not line.strip():
            return ""
        if _status_code(line):
            return line
    return ""


def _original_headers(message: Message) -> Message | None:
    """The returned original's headers from a message/rfc822 or text/rfc822-headers part."""
    for part in leaves(message):
        if part.get_content_type() not in _ORIGINAL_TYPES:
            continue
        if part.is_multipart():
            return next(iter(subparts(part)), None)
        return parse_header_block(normalize_newlines(part_text(part)))
    return None
