"""Lenient reading of MIME messages: header decoding, charsets and part traversal that never raise.

Headers carry raw 8-bit text, charsets are mislabelled or unknown, parameters are malformed; every
function here returns its best reading instead of an error.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Iterator
from email import message_from_string
from email.message import Message
from email.policy import Compat32
from typing import Any

_MAX_DEPTH = 20  # MIME nesting deeper than this is abuse, not mail

_FOLD = re.compile(r"\r?\n(?=[ \t])")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(r"(?<=\?=)\s+(?==\?)")
_BRACKETED_ID = re.compile(r"<([^<>\s]+)>")
# Names that are narrower than what senders actually mean, mapped to the superset they use.
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "x-sjis": "shift_jis",
    "shift-jis": "shift_jis",
}
# Declared as these, the bytes are as likely to be UTF-8; UTF-8 is tried first.
_WEAK_CODECS = (None, "ascii", "iso8859-1", "cp1252")


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


POLICY = _RawHeaders()


def parse_header_block(text: str) -> Message:
    """A message made of the header fields in ``text`` (a block quoted inside another message)."""
    return message_from_string(text + "\n\n", policy=POLICY)


def header(part: Message, name: str) -> str:
    """The decoded value of the first ``name`` field; "" when there is none."""
    value = part.get(name)
    return _decode_header(value) if isinstance(value, str) else ""


def all_headers(message: Message, name: str) -> list[str]:
    return [_decode_header(value) for value in message.get_all(name, []) if isinstance(value, str)]


def _decode_header(value: str) -> str:
    """Unfold, read raw 8-bit bytes as text, then decode RFC 2047 encoded-words."""
    value = _FOLD.sub("", value)
    if not value.isascii():
        value = decode_bytes(value.encode("utf-8", "surrogateescape"), None)
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
    return decode_bytes(data, charset.partition("*")[0])  # "*lang" is RFC 2231's language suffix


def decode_bytes(data: bytes, charset: str | None) -> str:
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


def message_ids(value: str) -> tuple[str, ...]:
    """The message ids in a Message-ID, In-Reply-To or References value, without brackets."""
    ids = _BRACKETED_ID.findall(value)
    if not ids:  # some systems drop the brackets
        ids = [token for token in re.split(r"[\s,]+", value) if "@" in token]
    return tuple(dict.fromkeys(ids))


def leaves(part: Message, depth: int = 0) -> Iterator[Message]:
    """Every non-multipart part, depth first; attached messages are leaves, not descended into."""
    if part.get_content_maintype() == "multipart" and part.is_multipart():
        if depth < _MAX_DEPTH:
            for child in subparts(part):
                yield from leaves(child, depth + 1)
    else:
        yield part


def subparts(part: Message) -> list[Message]:
    # get_payload() is only safe on a list payload: on text it decodes with the charset parameter,
    # which can be an RFC 2231 tuple that makes it raise TypeError.
    return [child for child in part.get_payload() if isinstance(child, Message)] if part.is_multipart() else []


def part_text(part: Message) -> str:
    """The part's payload, transfer-decoded and read as text in its declared charset."""
    data = part.get_payload(decode=True)
    return decode_bytes(data, param(part, "charset")) if isinstance(data, bytes) else ""


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def param(part: Message, name: str) -> str:
    """A Content-Type parameter, lowercased; "" when absent."""
    value = part.get_param(name, "")
    if isinstance(value, tuple):  # RFC 2231 (charset, language, text); the charset is ignored
        value = value[2]
    return str(value).strip().lower()
