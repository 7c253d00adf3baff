"""Reading an uploaded CSV file: its encoding, its delimiter, its header and its rows.

Encodings are tried in a fixed order rather than guessed statistically: a byte-order mark says
UTF-8 or UTF-16; otherwise UTF-8 (what every current tool writes), then Windows-1252 (Excel's
"CSV" on Western Windows), then ISO-8859-1, which decodes any byte. A guesser such as
charset-normalizer can name a different encoding for two files from the same tool, and its
answer for a short file is a coin toss; these three cover what spreadsheets export.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass

from ccm.errors import ValidationFailed

DELIMITERS = (",", ";", "\t", "|")
SAMPLE_RECORDS = 20
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f]")
_EMAIL_LIKE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NUMBER_LIKE = re.compile(r"^[+-]?[0-9][0-9 .,:/+-]*$")


@dataclass(frozen=True)
class ParsedFile:
    """A file read whole: ``rows`` are ``(row number, cells)``, the header being row 1."""

    encoding: str
    delimiter: str
    header: list[str]
    rows: list[tuple[int, list[str]]]


def refused(message: str, field: str = "file") -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", field=field)


def parse_file(
    raw: bytes, *, field: str = "file", encoding: str | None = None, delimiter: str | None = None
) -> ParsedFile:
    """Decode and split ``raw``.

    Raises:
      ValidationFailed: empty, binary, undecodable, malformed CSV, or no usable header (naming ``field``).
    """
    text, found_encoding = decode(raw, field=field, encoding=encoding)
    found_delimiter = delimiter or detect_delimiter(text)
    records = _records(text, found_delimiter, field)
    if not records or not any(cell.strip() for cell in records[0]):
        raise refused("no header row: the first line must name the columns", field)
    header = [cell.strip() for cell in records[0]]
    _check_header(header, field)
    rows = [(number, cells) for number, cells in enumerate(records[1:], start=2) if any(c.strip() for c in cells)]
    if not rows:
        raise refused("no rows under the header: nothing to import", field)
    return ParsedFile(found_encoding, found_delimiter, header, rows)


def decode(raw: bytes, *, field: str = "file", encoding: str | None = None) -> tuple[str, str]:
    """The text of ``raw`` and the encoding it was read in (see the module docstring)."""
    if not raw.strip():
        raise refused("the file is empty", field)
    if encoding:
        return _decode_as(raw, encoding, field), encoding
    for bom, name in _BOMS:
        if raw.startswith(bom):
            return _decode_as(raw[len(bom) :], name.removesuffix("-sig"), field), name.removesuffix("-sig")
    guessed = _utf16_without_bom(raw)
    if guessed:
        return _decode_as(raw, guessed, field), guessed
    if b"\x00" in raw:
        raise refused("this is a binary file, not CSV text (it holds NUL bytes)", field)
    for name in ("utf-8", "windows-1252"):
        try:
            return _checked_text(raw.decode(name), field), name
        except UnicodeDecodeError:
            continue
    return _checked_text(raw.decode("iso-8859-1"), field), "iso-8859-1"


def _utf16_without_bom(raw: bytes) -> str | None:
    """UTF-16 without a mark, told by its NUL bytes: ASCII text has one in every other byte."""
    sample = raw[:2000]
    if len(sample) < 4:
        return None
    odd, even = sample[1::2].count(0), sample[0::2].count(0)
    half = len(sample) // 2
    if odd > half * 0.6 and even == 0:
        return "utf-16-le"
    if even > half * 0.6 and odd == 0:
        return "utf-16-be"
    return None


def _decode_as(raw: bytes, encoding: str, field: str) -> str:
    try:
        return _checked_text(raw.decode(encoding), field)
    except (UnicodeDecodeError, LookupError) as exc:
        raise refused(f"cannot be read as {encoding}: {exc}", field) from None


def _checked_text(text: str, field: str) -> str:
    controls = len(_CONTROL.findall(text[:100_000]))
    if "\x00" in text or controls > max(3, len(text[:100_000]) // 100):
        raise refused("this is a binary file, not CSV text (it holds control characters)", field)
    return text.removeprefix("\ufeff")


def detect_delimiter(text: str) -> str:
    """The delimiter among ``, ; TAB |`` that splits the first records into the same number of
    columns (more than one), the most columns winning; :class:`csv.Sniffer` decides otherwise;
    ``,`` when nothing tells."""
    sample = _sample(text)
    best, best_columns = None, 1
    for candidate in DELIMITERS:
        try:
            records = [r for r in csv.reader(io.StringIO(sample, newline=""), delimiter=candidate) if r]
        except csv.Error:
            continue
        records = records[:SAMPLE_RECORDS]
        complete = records[:-1] if len(records) > 1 else records  # the sample may cut the last one
        widths = {len(record) for record in complete}
        if len(widths) == 1 and (columns := widths.pop()) > best_columns:
            best, best_columns = candidate, columns
    if best:
        return best
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        return ","


def _sample(text: str) -> str:
    """The first records' text: up to 64 kB, cut at a line end (the last record may be partial)."""
    sample = text[:65536]
    if len(text) > len(sample) and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    return sample


def _records(text: str, delimiter: str, field: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        return list(reader)
    except csv.Error as exc:
        raise refused(f"row {reader.line_num}: not valid CSV ({exc})", field) from None


def _check_header(header: list[str], field: str) -> None:
    named = [name for name in header if name]
    if any(_EMAIL_LIKE.match(name) for name in named) or all(_NUMBER_LIKE.match(name) for name in named):
        raise refused(f"no header row: the first row looks like data ({header[0]!r}); name the columns", field)
    seen: dict[str, str] = {}
    for name in named:
        key = name.casefold()
        if key in seen:
            raise refused(f"the header names the column {name!r} twice", field)
        seen[key] = name
