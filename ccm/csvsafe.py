"""CSV that opens safely in a spreadsheet: a cell that a spreadsheet would read as a formula
(``=``, ``+``, ``-``, ``@``, a tab or a carriage return first; OWASP's "CSV injection") is
written with a leading apostrophe, so it shows as the text it is and never runs."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """The text of a cell, neutralised if a spreadsheet would take it for a formula. Numbers stay
    numbers (a negative amount is not a formula)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The header, then every row, each as one CSV line of safe cells (for a streamed response)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for cells in itertools.chain([header], rows):
        writer.writerow([safe_cell(cell) for cell in cells])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
