"""``dramatiq bench.worker_probe``: the ``workers`` entry point with a look inside each worker
process, for ``bench/campaign_smtp.py --probe DIR`` only (production never imports this).

Every ``BENCH_PROBE_SECONDS`` (default 15) a daemon thread appends one JSON line to
``DIR/<pid>.jsonl``: the process's RSS, what tracemalloc traces (Python's own allocations), the
sizes of the caches that could grow with the run, and the 12 source lines whose traced memory
grew most since the first sample. RSS rising while the traced total stays level is the C
allocator (arenas, fragmentation, sockets' buffers), not Python objects held.
"""

from __future__ import annotations

import gc
import json
import os
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


def _sample(first: tracemalloc.Snapshot | None, started: float) -> tuple[dict[str, Any], tracemalloc.Snapshot]:
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    current, peak = tracemalloc.get_traced_memory()
    grew = []
    if first is not None:
        for stat in snapshot.compare_to(first, "lineno")[:12]:
            frame = stat.traceback[0]
            grew.append({"at": f"{frame.filename}:{frame.lineno}", "kib": round(stat.size_diff / 1024, 1)})
    line = {
        "t": round(time.monotonic() - started, 1),
        "rss_mib": _rss_mib(),
        "traced_mib": round(current / 2**20, 2),
        "traced_peak_mib": round(peak / 2**20, 2),
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
    tracemalloc.start(1)
    threading.Thread(
        target=_run,
        args=(Path(_DIR), float(os.environ.get("BENCH_PROBE_SECONDS", "15"))),
        name="bench-probe",
        daemon=True,
    ).start()
