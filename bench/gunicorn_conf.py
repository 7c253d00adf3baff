"""gunicorn settings for the benchmarks: each worker leaves a file in ``BENCH_BOOTED_DIR`` once it
has loaded the application, so a benchmark starts warming up only when every worker can answer."""

import os
from pathlib import Path


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    booted = os.environ.get("BENCH_BOOTED_DIR")
    if booted:
        Path(booted, str(worker.pid)).touch()
