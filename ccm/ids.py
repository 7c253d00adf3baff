"""Public identifiers: a type prefix and a time-ordered, unguessable 26-character body.

``msg_01JD3Q8W6ZJ5V0M4S2K7XH3N9C``: 48 bits of milliseconds then 80 random bits in Crockford
base32 (the ULID layout), so ids sort by creation time (cheap cursor pagination, index locality)
and cannot be enumerated. Within one process ids are strictly increasing: inside the same
millisecond the random part is incremented rather than drawn again (the ULID "monotonic" rule),
so "newest first" lists things in the order this process made them.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import threading
import time

_TO_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789ABCDEFGHJKMNPQRSTVWXYZ")
_FROM_CROCKFORD = str.maketrans("0123456789ABCDEFGHJKMNPQRSTVWXYZ", "0123456789abcdefghijklmnopqrstuv")
_lock = threading.Lock()
_last = 0


def new_id(prefix: str) -> str:
    global _last
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    with _lock:
        if value >> 80 <= _last >> 80:  # same millisecond (or the clock stepped back)
            value = _last + 1
        _last = value
    return _encoded(prefix, value)


def first_id_at(prefix: str, at: dt.datetime) -> str:
    """The smallest id made at ``at``: every id below it was made before (a bound for a range
    scan of the primary key, where ids stand in for creation times)."""
    return _encoded(prefix, int(at.timestamp() * 1000) << 80)


def id_at(prefix: str, at: dt.datetime) -> str:
    """An id as if made at ``at``, with fresh random bits (history written after the fact: seeded
    or imported rows that must sort where their time puts them)."""
    return _encoded(prefix, int(at.timestamp() * 1000) << 80 | int.from_bytes(os.urandom(10), "big"))


def time_of_id(value: str) -> dt.datetime:
    """The moment an id was made (or, for a campaign's message, is due): its first 10 characters
    after the prefix hold the milliseconds."""
    digits = value.split("_", 1)[-1][:10].translate(_FROM_CROCKFORD)
    return dt.datetime.fromtimestamp(int(digits, 32) / 1000, dt.UTC)


def _encoded(prefix: str, value: int) -> str:
    # 20 bytes are 32 base32 characters with no padding; the last 26 hold the low 130 bits.
    body = base64.b32encode(value.to_bytes(20, "big")).decode("ascii").translate(_TO_CROCKFORD)
    return f"{prefix}_{body[6:]}"
