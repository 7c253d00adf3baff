"""Cut a reply down to its own words: quoted history, attributions and signature removed."""

from __future__ import annotations

import re

_QUOTE_START_WORDS = ("on", "le", "am", "el")
_MAX_ATTRIBUTION = 400  # real ones are under 200 characters; the bound keeps the patterns cheap
_ATTRIBUTION = re.compile(
    r"^(?:On\s.+\swrote|Le\s.+\sa\s+écrit|Am\s.+\sschrieb(?:\s.+)?|El\s.+\sescribió)\s*:\s*$", re.IGNORECASE | re.DOTALL
)
_LOOSE_ATTRIBUTION = re.compile(r"(?:\bwrote|\ba\s+écrit|\bschrieb|\bescribió)\s*:\s*$", re.IGNORECASE)
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(?:Original Message|Message d['’]origine|Ursprüngliche Nachricht|Originalnachricht"
    r"|Mensaje original)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"^\s*\*?(?:From|De|Von)\s*:", re.IGNORECASE)
_HEADER_SUBJECT = re.compile(r"^\s*\*?(?:Subject|Objet|Betreff|Asunto)\s*:", re.IGNORECASE)
_HEADER_DATE = re.compile(r"^\s*\*?(?:Sent|Date|Envoyé|Gesendet|Datum|Enviado|Fecha)\s*:", re.IGNORECASE)
_MOBILE_SIGNATURE = re.compile(
    r"^(?:Sent from my .+|Envoyé de mon .+|Von meinem .+ gesendet|Enviado desde mi .+|Get Outlook for .+)$",
    re.IGNORECASE,
)


def strip_quoted(text: str) -> str:
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
            joined = " ".join(line.strip() for line in lines[index : index + length])
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
    if not _HEADER_FROM.match(line):
        return False
    # Both a date and a subject line: "From: Paris / Date: Monday" in a reply is not a header block.
    block = lines[index + 1 : index + 6]
    return any(map(_HEADER_DATE.match, block)) and any(map(_HEADER_SUBJECT.match, block))
