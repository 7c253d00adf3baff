"""Public identifiers: a type prefix and a time-ordered, unguessable 26-character body.

``msg_01JD3Q8W6ZJ5V0M4S2K7XH3N9C``: 48 bits of milliseconds then 80 random bits in Crockford
base32 (the ULID layout), so ids sort by creation time (cheap cursor pagination, index locality)
and cannot be enumerated.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id(prefix: str) -> str:
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"
