"""``dramatiq bench.worker_probe``: the ``workers`` entry point with a look inside each worker
process, for ``bench/campaign_smtp.py --probe DIR`` only (production never imports this).

Every ``BENCH_PROBE_SECONDS`` (default 15) a daemon thread appends one JSON line to
``DIR/<pid>.jsonl``: the process's RSS, what tracemalloc traces (Python's own allocations), the
sizes of the caches that could grow with the run, and the 12 source lines whose traced memory
grew most since the first sample. RSS rising while the traced total stays level is the C
allocator (arenas, fragmentation, sockets' buffers), not Python objects held. To tell which: the
resident memory of the process's mappings by kind (``/proc/self/smaps``: the main heap, glibc's
64 MiB thread heaps, Python's 1 MiB object arenas, thread stacks, larger anonymous blocks, files)
and glibc's own count of the bytes in use (``mallinfo2``). ``BENCH_PROBE_TRACEMALLOC=0`` leaves
tracemalloc off (the run keeps its speed).
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

from workers import broker, runtime  # noqa: F401  (dramatiq finds the broker here)

_DIR = os.environ.get("BENCH_PROBE_DIR")


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _caches() -> dict[str, Any]:
    """Sizes of what a long run could fill: SQLAlchemy's compiled cache, the template cache, the
    sockets this process holds."""
    engine = runtime.db.engine
    compiled = getattr(engine, "_compiled_cache", None)
    return {
        "sqlalchemy_compiled": len(compiled) if compiled is not None else None,
        "pool_checked_out": engine.pool.checkedout(),
        "pool_size": engine.pool.size(),
        "open_fds": len(os.listdir("/proc/self/fd")),
        "gc_objects": len(gc.get_objects()),
    }


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")
    ]  # fmt: skip


def _malloc() -> dict[str, float]:
    """glibc's totals over every arena, MiB: in use, free inside the heaps, in mmapped blocks."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except AttributeError:
        return {}
    mallinfo2.restype = _Mallinfo2
    info = mallinfo2()
    return {
        "in_use": round(info.uordblks / 2**20, 2),
        "free_in_heaps": round(info.fordblks / 2**20, 2),
        "mmapped": round(info.hblkhd / 2**20, 2),
    }


def _mappings() -> dict[str, float]:
    """Resident MiB of the process's mappings: the main heap, files, the other anonymous ones
    (glibc's thread heaps and large blocks, Python's object arenas, stacks: adjacent ones merge,
    so their sizes do not tell them apart)."""
    kinds: dict[str, float] = {}
    kind = "other"
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:  # a mapping's header line
            name = fields[5] if len(fields) > 5 else ""
            kind = (
                "main_heap"
                if name == "[heap]"
                else "files"
                if name.startswith("/")
                else "other"
                if name
                else "anonymous"
            )
        elif fields[0] == "Rss:":
            kinds[kind] = kinds.get(kind, 0.0) + int(fields[1]) / 1024
    return {name: round(mib, 2) for name, mib in sorted(kinds.items())}


_PYMALLOC = {
    "# arenas allocated current": "arenas",
    "# bytes in allocated blocks": "in_use_mib",
    "# bytes in available blocks": "free_in_pools_mib",
}


def _pymalloc() -> dict[str, float]:
    """Python's object allocator (1 MiB arenas): arenas held, MiB in use and free inside them,
    from ``sys._debugmallocstats()`` (it writes to stderr: captured for the call)."""
    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    found: dict[str, float] = {}
    for line in text.splitlines():
        label, _, value = line.partition("=")
        if (key := _PYMALLOC.get(label.strip())) is not None:
            number = int(value.strip().replace(",", ""))
            found[key] = number if key == "arenas" else round(number / 2**20, 2)
    return found


def _sample(first: tracemalloc.Snapshot | None, started: float) -> tuple[dict[str, Any], tracemalloc.Snapshot | None]:
    tracing = tracemalloc.is_tracing()
    snapshot = (
        tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        if tracing
        else None
    )
    current, peak = tracemalloc.get_traced_memory()
    grew = []
    if first is not None and snapshot is not None:
        for stat in snapshot.compare_to(first, "lineno")[:12]:
            frame = stat.traceback[0]
            grew.append({"at": f"{frame.filename}:{frame.lineno}", "kib": round(stat.size_diff / 1024, 1)})
    line = {
        "t": round(time.monotonic() - started, 1),
        "rss_mib": _rss_mib(),
        "traced_mib": round(current / 2**20, 2),
        "traced_peak_mib": round(peak / 2**20, 2),
        "mappings_mib": _mappings(),
        "malloc_mib": _malloc(),
        "pymalloc": _pymalloc(),
        **_caches(),
        "grew_since_first": grew,
    }
    return line, snapshot


def _run(directory: Path, every: float) -> None:
    started, first = time.monotonic(), None
    out = directory / f"{os.getpid()}.jsonl"
    while True:
        time.sleep(every)
        line, snapshot = _sample(first, started)
        first = first or snapshot
        with out.open("a") as file:
            file.write(json.dumps(line) + "\n")


if _DIR:
    if os.environ.get("BENCH_PROBE_TRACEMALLOC", "1") != "0":
        tracemalloc.start(1)
    threading.Thread(
        target=_run,
        args=(Path(_DIR), float(os.environ.get("BENCH_PROBE_SECONDS", "15"))),
        name="bench-probe",
        daemon=True,
    ).start()
