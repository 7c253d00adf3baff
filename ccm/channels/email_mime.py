"""Build the RFC 5322 / MIME bytes of an email.

Every email CCM sends has one shape: a text part, optionally with an HTML alternative. The stdlib
``email`` package builds an object model and folds each header through its policy machinery,
which costs milliseconds per message; writing that one shape directly costs microseconds.
"""

from __future__ import annotations

import binascii
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import cache
from types import MappingProxyType

import css_inline

MAX_LINE = 78
"""RFC 5322's recommended header line length; lines may run longer only when they cannot fold."""

HARD_LINE_LIMIT = 998
"""RFC 5322's absolute limit on a line, excluding CRLF."""

# Python's str.splitlines() breaks on all of these, so any of them could end a header somewhere.
_LINE_BREAKS = re.compile("[\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
# "=?" forces encoding too, so that literal text is never decoded as an encoded-word.
_NEEDS_ENCODING = re.compile(r"[^\t\x20-\x7e]|=\?")
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")
_ADDR_PART = r"[^\x00-\x20\x7f-\U0010ffff<>()\[\],;:\\\"@]+"
_ADDR_SPEC = re.compile(f"{_ADDR_PART}@{_ADDR_PART}")
_MESSAGE_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>")
_PLAIN_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]+")
_QUOTED_PAIR = re.compile(r"\\(.)")
_FOLD_POINTS = re.compile(r"(?=[ \t][^ \t])")

# RFC 2047 section 5 (3): the only characters an encoded-word in a phrase may carry literally.
_Q_LITERAL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_Q_ONE_CHAR = bytes(_Q_LITERAL) + b" "
_Q_TABLE = tuple(chr(c) if c in _Q_LITERAL else "_" if c == 32 else f"={c:02X}" for c in range(256))
# "Subject: " plus one encoded-word fits in MAX_LINE; "=?utf-8?q?" and "?=" take 12 of it.
_WORD_ROOM = MAX_LINE - len("Subject: ") - 12

_RESERVED = frozenset(
    {
        "mime-version",
        "date",
        "message-id",
        "from",
        "to",
        "subject",
        "reply-to",
        "content-type",
        "content-transfer-encoding",
    }
)
_PART_HEAD = "Content-Type: text/{}; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
_TEXT_HEAD = _PART_HEAD.format("plain").encode()
_HTML_HEAD = _PART_HEAD.format("html").encode()


@dataclass(frozen=True)
class EmailContent:
    """What goes into one email, already rendered.

    ``to_addr`` is a validated ASCII address (IDN domains already punycoded); ``from_addr`` and
    ``reply_to`` may carry a display name (``"Name <addr@x>"``); ``headers`` holds extra headers
    such as ``List-Unsubscribe``.
    """

    from_addr: str
    to_addr: str
    subject: str
    html: str | None
    text: str
    message_id: str
    reply_to: str | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


class HeaderInjectionError(ValueError):
    """A header value or name contains a line break or NUL; ``field`` names the header."""

    def __init__(self, field: str, detail: str = "contains a line break or NUL") -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field


def message_id_for(message_id: str, envelope_from: str) -> str:
    """The ``Message-ID`` of CCM's message ``message_id`` sent from ``envelope_from``: replies name
    it in ``In-Reply-To``, and follow-ups in a thread point at it."""
    return f"<{message_id}@{envelope_from.rpartition('@')[2] or 'ccm.local'}>"


def build_email(content: EmailContent, *, date: datetime | None = None) -> bytes:
    """Return the complete message as bytes with CRLF line endings.

    Parameters:
      date: the ``Date`` header; now when omitted, UTC when naive.

    Raises:
      HeaderInjectionError: a header field would contain a line break or NUL, or an extra header
        has a malformed name or is one ``build_email`` writes itself; nothing is built.
      ValueError: an address (not plain ASCII, or not ``addr`` / ``Name <addr>``) or the
        Message-ID is malformed.
    """
    head = _headers(content, date or datetime.now(UTC))
    text = _quoted_printable(content.text)
    if content.html is None:
        return b"".join((head, _TEXT_HEAD, text))
    # QP output always writes "=" as "=3D" or a soft break, so "=_" can never occur in the bodies.
    boundary = f"=_{secrets.token_hex(16)}".encode()
    return b"".join(
        (
            head,
            b'Content-Type: multipart/alternative;\r\n boundary="',
            boundary,
            b'"\r\n\r\n',
            b"--",
            boundary,
            b"\r\n",
            _TEXT_HEAD,
            text,
            b"\r\n--",
            boundary,
            b"\r\n",
            _HTML_HEAD,
            _quoted_printable(content.html),
            b"\r\n--",
            boundary,
            b"--\r\n",
        )
    )


def inline_css(html: str) -> str:
    """Move ``<style>`` rules into ``style`` attributes, keeping ``@media`` rules; never fetches."""
    return _inliner().inline(html)


@cache
def _inliner() -> css_inline.CSSInliner:
    return css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True)


def _headers(content: EmailContent, date: datetime) -> bytes:
    """The top-level headers up to the Content-Type, each line ending in CRLF."""
    _check_no_breaks(content)
    if not _MESSAGE_ID.fullmatch(content.message_id):
        raise ValueError(f"Message-ID: not of the form <id@domain>: {content.message_id!r}")
    if date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    lines = [
        "MIME-Version: 1.0",
        f"Date: {format_datetime(date)}",
        f"Message-ID: {content.message_id}",
        _address_header("From", content.from_addr),
        _address_header("To", content.to_addr),
        _unstructured_header("Subject", content.subject),
    ]
    if content.reply_to is not None:
        lines.append(_address_header("Reply-To", content.reply_to))
    lines.extend(_unstructured_header(name, value) for name, value in content.headers.items())
    lines.append("")
    return "\r\n".join(lines).encode("ascii")


def _check_no_breaks(content: EmailContent) -> None:
    """Raise before anything is built when a header field could end early."""
    fields = [
        ("Message-ID", content.message_id),
        ("From", content.from_addr),
        ("To", content.to_addr),
        ("Subject", content.subject),
        ("Reply-To", content.reply_to or ""),
    ]
    for name, value in fields:
        if _LINE_BREAKS.search(value):
            raise HeaderInjectionError(name)
    for name, value in content.headers.items():
        if not _FIELD_NAME.fullmatch(name):
            raise HeaderInjectionError(name, "is not a valid header field name")
        if name.lower() in _RESERVED:
            raise HeaderInjectionError(name, "is written by build_email and cannot be overridden")
        if _LINE_BREAKS.search(value):
            raise HeaderInjectionError(name)


def _address_header(name: str, value: str) -> str:
    """``Name: display <addr>`` with the display name quoted or encoded as needed."""
    display, addr = _split_address(name, value)
    if not display:
        return f"{name}: {addr}"
    if not _NEEDS_ENCODING.search(display):
        if not _PLAIN_PHRASE.fullmatch(display):
            display = '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"'
        folded = _fold_at_whitespace(name, f"{display} <{addr}>")
        if folded is not None:
            return folded
    return _fold(name, _spaced(_encoded_words(display)) + [f" <{addr}>"])


def _split_address(name: str, value: str) -> tuple[str, str]:
    """Split ``"Name <addr>"`` or ``addr`` into display name (unquoted) and address."""
    value = value.strip()
    display, addr = "", value
    if value.endswith(">"):
        display, _, addr = value[:-1].rpartition("<")
        display = display.strip()
        if len(display) >= 2 and display[0] == display[-1] == '"':
            display = _QUOTED_PAIR.sub(r"\1", display[1:-1])
    if not _ADDR_SPEC.fullmatch(addr):
        raise ValueError(f"{name}: not a plain ASCII address: {value!r}")
    return display, addr


def _unstructured_header(name: str, value: str) -> str:
    """A free-text header, folded at whitespace, or as encoded-words when it is not plain ASCII."""
    if not _NEEDS_ENCODING.search(value):
        folded = _fold_at_whitespace(name, value)
        if folded is not None:
            return folded
    # Encoded-words can be split anywhere, so they also carry runs too long to fold.
    return _fold(name, _spaced(_encoded_words(value)))


def _fold_at_whitespace(name: str, value: str) -> str | None:
    """The header folded before whitespace, or None when a line would still exceed 998."""
    line = f"{name}: {value}"
    if len(line) <= MAX_LINE:
        return line
    folded = _fold(name, _FOLD_POINTS.split(value))
    if any(len(part) > HARD_LINE_LIMIT for part in folded.split("\r\n")):
        return None
    return folded


def _fold(name: str, tokens: list[str]) -> str:
    """Join tokens onto lines of at most MAX_LINE, breaking only before a token.

    Every token after the first must start with whitespace so that each break is a legal fold.
    """
    lines = [f"{name}: {tokens[0]}"]
    for token in tokens[1:]:
        if len(lines[-1]) + len(token) > MAX_LINE:
            lines.append(token)
        else:
            lines[-1] += token
    return "\r\n".join(lines)


def _spaced(words: list[str]) -> list[str]:
    return words[:1] + [" " + word for word in words[1:]]


def _encoded_words(text: str) -> list[str]:
    """RFC 2047 utf-8 encoded-words, Q or B whichever is shorter, none splitting a character."""
    data = text.encode()
    q_size = len(data) + 2 * len(data.translate(None, _Q_ONE_CHAR))
    use_q = q_size <= (len(data) + 2) // 3 * 4
    room = _WORD_ROOM if use_q else _WORD_ROOM // 4 * 3
    if (q_size if use_q else len(data)) <= room:
        return [_encoded_word(data, use_q)]
    words: list[str] = []
    chunk, size = bytearray(), 0
    for char in text:
        encoded = char.encode()
        cost = sum(len(_Q_TABLE[byte]) for byte in encoded) if use_q else len(encoded)
        if chunk and size + cost > room:
            words.append(_encoded_word(bytes(chunk), use_q))
            chunk, size = bytearray(), 0
        chunk += encoded
        size += cost
    words.append(_encoded_word(bytes(chunk), use_q))
    return words


def _encoded_word(data: bytes, use_q: bool) -> str:
    if use_q:
        return "=?utf-8?q?" + "".join(map(_Q_TABLE.__getitem__, data)) + "?="
    return "=?utf-8?b?" + binascii.b2a_base64(data, newline=False).decode() + "?="


def _quoted_printable(body: str) -> bytes:
    """Quoted-printable with CRLF line breaks, ending in CRLF.

    b2a_qp keeps whichever line ending it sees first, so the body is normalised to CRLF and made
    to contain at least one before encoding.
    """
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    if not body.endswith("\n"):
        body += "\n"
    return binascii.b2a_qp(body.replace("\n", "\r\n").encode(), istext=True)
