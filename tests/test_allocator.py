"""``tune_allocator``: after it, a block of a rendered email's size that the heap has no room for
gets a mapping of its own (returned to the system when freed) instead of growing the heap, which is what
kept the workers' RSS creeping up (bench/README.md). Checked in a fresh process through glibc's
own count of its mmapped bytes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_PROBE = """
import ctypes, sys
from ccm.worker import tune_allocator

class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = Mallinfo2
threshold = int(sys.argv[1])
print("tuned" if tune_allocator(threshold) else "untouched")
before = mallinfo2().hblkhd
blocks = [bytes(40_000) for _ in range(50)]  # noqa: F841  (50 bodies of 40 kB, alive together)
print(mallinfo2().hblkhd - before)
"""


def _mmapped_growth(threshold: int) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(threshold)], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


def test_blocks_of_a_rendered_email_s_size_get_their_own_mapping_once_tuned():
    if not sys.platform.startswith("linux"):
        pytest.skip("mallopt is glibc's")
    assert _mmapped_growth(0) == ("untouched", 0)  # glibc's default: from the heap
    state, grew = _mmapped_growth(32_768)
    assert state == "tuned"
    assert grew > 25 * 40_000  # most of them (glibc still serves one from free space its heap has)
