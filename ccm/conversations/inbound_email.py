"""Parse an inbound email — a reply or a bounce — into plain values; no database, no network.

Mail from the outside is often malformed: headers carry raw 8-bit text, charsets are mislabelled or
unknown, MIME boundaries are missing. Everything here is lenient and best effort; only bytes with
no message header at all are refused (``MalformedEmail``).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, message_from_string
from email.message import Message
from email.policy import Compat32
from email.utils import getaddresses
from typing import Any

from ccm.channels.html_text import html_to_text

_CORE_FIELDS = ("from", "sender", "to", "cc", "subject", "date", "message-id", "received", "return-path",
                "mime-version", "content-type", "delivered-to")
_RECIPIENT_FIELDS = ("To", "Cc", "Delivered-To", "X-Original-To")
_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
_ORIGINAL_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers",
                   "message/rfc822-headers")
_BOUNCE_SENDERS = ("mailer-daemon", "mailerdaemon", "mail-daemon", "postmaster")
_AUTO_PRECEDENCE = ("bulk", "junk", "list", "auto_reply")
_MAX_DEPTH = 20  # MIME nesting deeper than this is abuse, not mail
_MAX_BOUNCE_LINE = 1000

_FOLD = re.compile(r"\r?\n(?=[ \t])")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(r"(?<=\?=)\s+(?==\?)")
_BRACKETED_ID = re.compile(r"<([^<>\s]+)>")
_CCM_ID = re.compile(r"^(msg_[0-9A-Za-z]+)@")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_REPLY = re.compile(r"\b([245])\d\d[ -]")
# The lookbehind and possessive quantifiers keep the search linear on long runs of address characters.
_ADDRESS = re.compile(r"(?<![A-Za-z0-9.!#$%&'*+/=?^_`{|}~-])([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}+"
                      r"@[A-Za-z0-9-]{1,63}+(?:\.[A-Za-z0-9-]{1,63}+)++)")
_ADDRESS_LINE = re.compile(r"^\s*<?([^\s<>@]+@[^\s<>@]+?)>?:?\s*$")
_DELAY_WORDS = re.compile(r"delay|will (?:keep )?(?:re)?try|not yet been delivered|warning", re.IGNORECASE)
_TEXT_HEADER = {"message-id": re.compile(r"^[ \t]*Message-ID:\s*<([^<>\s]+)>", re.IGNORECASE | re.MULTILINE),
                "x-ccm-message-id": re.compile(r"^[ \t]*X-CCM-Message-Id:\s*(\S+)", re.IGNORECASE | re.MULTILINE)}
# Names that are narrower than what senders actually mean, mapped to the superset they use.
_CHARSET_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "ks_c_5601-1987": "cp949", "iso-8859-8-i": "iso-8859-8",
                    "x-sjis": "shift_jis", "shift-jis": "shift_jis"}
# Declared as these, the bytes are as likely to be UTF-8; UTF-8 is tried first.
_WEAK_CODECS = (None, "ascii", "iso8859-1", "cp1252")


class MalformedEmail(ValueError):
    """The bytes are not an email message: no header fields an email has."""


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


class _LenientMessage(Message):
    """A Message whose parameter lookups never raise. The stdlib's RFC 2231 decoding raises
    TypeError or ValueError on some malformed parameters, even inside the parser (the boundary)."""

    def get_param(self, param: str, failobj: Any = None, header: str = "content-type", unquote: bool = True) -> Any:
        try:
            return super().get_param(param, failobj, header, unquote)
        except (TypeError, ValueError, LookupError):
            return failobj


class _RawHeaders(Compat32):
    """compat32 parsing, but header values come back as the parsed strings (8-bit bytes as
    surrogates) so that decoding stays in this module and never raises."""

    message_factory = _LenientMessage

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


_POLICY = _RawHeaders()


def parse_email(raw: bytes) -> ParsedEmail:
    """Parse ``raw`` (a complete RFC 5322 message) into a ``ParsedEmail``.

    ``text`` is the reply's own words: the text/plain part (else the HTML part as text) without
    quoted history and signature. ``auto_submitted`` is also true for every bounce.

    Raises:
      MalformedEmail: ``raw`` has none of the header fields an email has.
    """
    message = _parse(raw)
    from_name, from_address = _address(_header(message, "From"))
    from_address = from_address.lower()
    full_text = _body_text(message)
    dsn = _dsn(message, full_text) if _is_bounce(message, from_name, from_address) else None
    return ParsedEmail(
        message_id=next(iter(_message_ids(_header(message, "Message-ID"))), None),
        from_address=from_address,
        from_name=from_name,
        to_addresses=_recipients(message),
        subject=_header(message, "Subject"),
        in_reply_to=_message_ids(_header(message, "In-Reply-To")),
        references=_message_ids(_header(message, "References")),
        text=_strip_quoted(full_text),
        full_text=full_text,
        auto_submitted=dsn is not None or _is_auto_submitted(message),
        dsn=dsn,
    )


def reply_address_token(address: str, *, domain: str) -> str | None:
    """The token of ``reply+<token>@domain`` (local part prefix matched case-insensitively);
    None for any other address. ``address`` may carry a display name."""
    local, _, address_domain = _address(address)[1].rpartition("@")
    if address_domain.lower().rstrip(".") != domain.lower().rstrip("."):
        return None
    if not local.lower().startswith("reply+") or len(local) == len("reply+"):
        return None
    return local[len("reply+"):]


def _parse(raw: bytes) -> Message:
    try:
        message = message_from_bytes(raw, policy=_POLICY)
    except RecursionError:
        raise MalformedEmail("MIME structure nested too deeply") from None
    if not any(name.lower() in _CORE_FIELDS for name in message):
        raise MalformedEmail("no email header fields")
    return message


def _header(part: Message, name: str) -> str:
    value = part.get(name)
    return _decode_header(value) if isinstance(value, str) else ""


def _decode_header(value: str) -> str:
    """Unfold, read raw 8-bit bytes as text, then decode RFC 2047 encoded-words."""
    value = _FOLD.sub("", value)
    if not value.isascii():
        value = _decode_bytes(value.encode("utf-8", "surrogateescape"), None)
    if "=?" in value:
        value = _ENCODED_WORD.sub(_decode_word, _BETWEEN_WORDS.sub("", value))
    return value.strip()


def _decode_word(match: re.Match[str]) -> str:
    charset, encoding, text = match.groups()
    data = text.encode("utf-8", "surrogateescape")
    try:
        if encoding in "bB":
            data = base64.b64decode(data + b"=" * (-len(data) % 4))
        else:
            data = binascii.a2b_qp(data, header=True)
    except (binascii.Error, ValueError):
        return match.group(0)
    return _decode_bytes(data, charset.partition("*")[0])  # "*lang" is RFC 2231's language suffix


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset or UTF-8, whichever fits; cp1252 when neither does."""
    if data.isascii():
        return data.decode("ascii")
    codec = _codec(charset)
    for name in ("utf-8", codec) if codec in _WEAK_CODECS else (codec, "utf-8"):
        if name is not None:
            try:
                return data.decode(name)
            except (UnicodeError, LookupError):  # LookupError: a codec that is not text (base64)
                continue
    return data.decode("cp1252", errors="replace")


def _codec(charset: str | None) -> str | None:
    if not charset:
        return None
    name = charset.strip().strip('"').lower()
    try:
        return codecs.lookup(_CHARSET_ALIASES.get(name, name)).name
    except (LookupError, ValueError):
        return None


def _address(value: str) -> tuple[str, str]:
    """(display name, address) of the first address in ``value``."""
    name, address = next(iter(_parse_addresses([value])), ("", ""))
    return name.strip(), address.strip()


def _recipients(message: Message) -> tuple[str, ...]:
    values = [value for name in _RECIPIENT_FIELDS for value in _all_headers(message, name)]
    addresses = (address.strip().lower() for _, address in _parse_addresses(values))
    return tuple(dict.fromkeys(address for address in addresses if "@" in address))


def _parse_addresses(values: list[str]) -> list[tuple[str, str]]:
    try:
        return getaddresses(values)
    except RecursionError:  # the stdlib recurses once per nested comment: "((((((..."
        return []


def _all_headers(message: Message, name: str) -> list[str]:
    return [_decode_header(value) for value in message.get_all(name, []) if isinstance(value, str)]


def _message_ids(value: str) -> tuple[str, ...]:
    ids = _BRACKETED_ID.findall(value)
    if not ids:  # some systems drop the brackets
        ids = [token for token in re.split(r"[\s,]+", value) if "@" in token]
    return tuple(dict.fromkeys(ids))


def _is_auto_submitted(message: Message) -> bool:
    """RFC 3834 Auto-Submitted plus the older conventions vacation responders still use."""
    auto = _header(message, "Auto-Submitted").partition(";")[0].strip().lower()
    if auto not in ("", "no"):
        return True
    if _header(message, "Precedence").lower() in _AUTO_PRECEDENCE:
        return True
    return any(message.get(name) is not None and _header(message, name).lower() != "no"
               for name in ("X-Autoreply", "X-Autorespond"))


def _leaves(part: Message, depth: int = 0) -> Iterator[Message]:
    """Every non-multipart part, depth first; attached messages are leaves, not descended into."""
    if part.get_content_maintype() == "multipart" and part.is_multipart():
        if depth < _MAX_DEPTH:
            for child in _subparts(part):
                yield from _leaves(child, depth + 1)
    else:
        yield part


def _subparts(part: Message) -> list[Message]:
    # get_payload() is only safe on a list payload: on text it decodes with the charset parameter,
    # which can be an RFC 2231 tuple that makes it raise TypeError.
    return [child for child in part.get_payload() if isinstance(child, Message)] if part.is_multipart() else []


def _body_text(message: Message) -> str:
    """The first inline text/plain part, else the first inline text/html part as text."""
    html = None
    for part in _leaves(message):
        if part.get_content_disposition() == "attachment":
            continue
        if part.get_content_type() == "text/plain":
            return _normalize_newlines(_part_text(part))
        if part.get_content_type() == "text/html" and html is None:
            html = part
    return _normalize_newlines(html_to_text(_part_text(html))) if html is not None else ""


def _part_text(part: Message) -> str:
    data = part.get_payload(decode=True)
    return _decode_bytes(data, _param(part, "charset")) if isinstance(data, bytes) else ""


def _normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def _param(part: Message, name: str) -> str:
    value = part.get_param(name, "")
    if isinstance(value, tuple):  # RFC 2231 (charset, language, text); the charset is ignored
        value = value[2]
    return str(value).strip().lower()


def _is_bounce(message: Message, from_name: str, from_address: str) -> bool:
    """A report with report-type=delivery-status, or a non-report message from a mailer daemon.

    Other reports (read receipts, abuse feedback) are not bounces even from a mailer daemon.
    """
    if message.get_content_type() == "multipart/report":
        return _param(message, "report-type") == "delivery-status"
    local_part = from_address.partition("@")[0]
    name = from_name.lower()
    return local_part in _BOUNCE_SENDERS or "mail delivery" in name or "mailer-daemon" in name


def _dsn(message: Message, text: str) -> Dsn:
    recipients = _status_recipients(message) or _text_recipients(text)
    original = _original_headers(message)
    if original is not None:
        message_id = next(iter(_message_ids(_header(original, "Message-ID"))), None)
        ccm_header = _header(original, "X-CCM-Message-Id") or None
    else:  # a plain-text bounce often quotes the original's headers in its text
        found = {name: pattern.search(text) for name, pattern in _TEXT_HEADER.items()}
        message_id = found["message-id"] and found["message-id"].group(1)
        ccm_header = found["x-ccm-message-id"] and found["x-ccm-message-id"].group(1)
    from_id = _CCM_ID.match(message_id or "")
    return Dsn(original_message_id=message_id or ccm_header,
               ccm_message_id=ccm_header or (from_id.group(1) if from_id else None),
               recipients=recipients)


def _status_recipients(message: Message) -> tuple[DsnRecipient, ...]:
    part = next((leaf for leaf in _leaves(message) if leaf.get_content_type() in _STATUS_TYPES), None)
    if part is None:
        return ()
    blocks = _subparts(part)
    if not part.is_multipart():  # a global (UTF-8) or transfer-encoded status part
        chunks = re.split(r"\n[ \t]*\n", _normalize_newlines(_part_text(part)))
        blocks = [message_from_string(chunk + "\n\n", policy=_POLICY) for chunk in chunks]
    found = (_status_recipient(block) for block in blocks)
    return tuple(recipient for recipient in found if recipient is not None)


def _status_recipient(block: Message) -> DsnRecipient | None:
    # Original-Recipient is the address as CCM sent it, before any forwarding rewrote it.
    address = _typed_value(_header(block, "Original-Recipient")) or _typed_value(_header(block, "Final-Recipient"))
    address = address.strip("<>").lower()
    if "@" not in address:
        return None
    action = _header(block, "Action").lower()
    diagnostic = _typed_value(_header(block, "Diagnostic-Code") or _header(block, "X-Exim-Diagnostic"))
    status = _status_code(_header(block, "Status")) or _status_code(diagnostic)
    return DsnRecipient(address=address, action=action, status=status, diagnostic=diagnostic,
                        permanent=action == "failed" and status.startswith("5"))


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
    action = "delayed" if _DELAY_WORDS.search(text) else "failed"
    found: dict[str, DsnRecipient] = {}
    lines = [line[:_MAX_BOUNCE_LINE] for line in text.split("\n")]
    for index, line in enumerate(lines):
        address_only = _ADDRESS_LINE.match(line)
        if address_only and "@" in address_only.group(1):
            address, detail = address_only.group(1), _next_coded_line(lines[index + 1:index + 6])
        else:
            address_match = _status_code(line) and _ADDRESS.search(line)
            address, detail = (address_match.group(1), line) if address_match else ("", "")
        status = _status_code(detail)
        if address and status and address.lower() not in found:
            found[address.lower()] = DsnRecipient(address=address.lower(), action=action, status=status,
                                                  diagnostic=" ".join(detail.split()),
                                                  permanent=action == "failed" and status.startswith("5"))
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
    for part in _leaves(message):
        if part.get_content_type() not in _ORIGINAL_TYPES:
            continue
        if part.is_multipart():
            return next(iter(_subparts(part)), None)
        return message_from_string(_normalize_newlines(_part_text(part)) + "\n\n", policy=_POLICY)
    return None


_QUOTE_START_WORDS = ("on", "le", "am", "el")
_MAX_ATTRIBUTION = 400  # real ones are under 200 characters; the bound keeps the patterns cheap
_ATTRIBUTION = re.compile(
    r"^(?:On\s.+\swrote|Le\s.+\sa\s+écrit|Am\s.+\sschrieb(?:\s.+)?|El\s.+\sescribió)\s*:\s*$",
    re.IGNORECASE | re.DOTALL)
_LOOSE_ATTRIBUTION = re.compile(r"(?:\bwrote|\ba\s+écrit|\bschrieb|\bescribió)\s*:\s*$", re.IGNORECASE)
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(?:Original Message|Message d['’]origine|Ursprüngliche Nachricht|Originalnachricht"
    r"|Mensaje original)\s*-{2,}\s*$", re.IGNORECASE)
_HEADER_FROM = re.compile(r"^\s*\*?(?:From|De|Von)\s*:", re.IGNORECASE)
_HEADER_DATE = re.compile(r"^\s*\*?(?:Sent|Date|Envoyé|Gesendet|Datum|Enviado|Fecha)\s*:", re.IGNORECASE)
_MOBILE_SIGNATURE = re.compile(
    r"^(?:Sent from my .+|Envoyé de mon .+|Von meinem .+ gesendet|Enviado desde mi .+|Get Outlook for .+)$",
    re.IGNORECASE)


def _strip_quoted(text: str) -> str:
    """The reply's own lines: quoted history, attributions and signature removed.

    ``>``-quoted lines and their attribution line are dropped wherever they are, so bottom-posted
    and inline answers survive; an unquoted history (Outlook headers, HTML turned into text) ends
    the reply, and so does a signature.
    """
    lines = text.split("\n")
    kept: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        attribution = _attribution_length(lines, index)
        if attribution:
            if not _quote_follows(lines, index + attribution):
                break
            index += attribution
            continue
        if _starts_history(lines, index) or line.rstrip() == "--" or _MOBILE_SIGNATURE.match(line.strip()):
            break
        if not line.lstrip().startswith(">"):
            kept.append(line.rstrip())
        index += 1
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def _attribution_length(lines: list[str], index: int) -> int:
    """How many lines (1-3: clients wrap long ones) the attribution starting at ``index`` spans; 0
    when there is none there."""
    if len(lines[index]) > _MAX_ATTRIBUTION:
        return 0
    if lines[index].strip().partition(" ")[0].lower() in _QUOTE_START_WORDS:
        for length in (1, 2, 3):
            joined = " ".join(line.strip() for line in lines[index:index + length])
            if len(joined) <= _MAX_ATTRIBUTION and _ATTRIBUTION.match(joined):
                return length
    if _LOOSE_ATTRIBUTION.search(lines[index]) and _quote_follows(lines, index + 1):
        return 1
    return 0


def _quote_follows(lines: list[str], index: int) -> bool:
    following = next((line for line in lines[index:] if line.strip()), "")
    return following.lstrip().startswith(">")


def _starts_history(lines: list[str], index: int) -> bool:
    """An Outlook-style separator, or a From:/Sent: header block (after an optional rule)."""
    line = lines[index]
    if _ORIGINAL_MESSAGE.match(line):
        return True
    if re.fullmatch(r"\s*_{10,}\s*", line):
        return index + 1 < len(lines) and bool(_HEADER_FROM.match(lines[index + 1]))
    return bool(_HEADER_FROM.match(line)) and any(_HEADER_DATE.match(next_line)
                                                   for next_line in lines[index + 1:index + 4])
