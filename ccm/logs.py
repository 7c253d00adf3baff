"""Logging set-up for the CLI, the WSGI app and the workers, and the count of delivery outcomes
behind each worker process's throughput line."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter


def configure_logging(level: str = "INFO") -> None:
    numeric = logging.getLevelName(level.upper())
    logging.basicConfig(level=numeric, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("dramatiq", "alembic"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))


class OutcomeCounts:
    """How many runs ended in each outcome (``delivered``, ``failed``, ``retrying`` …) in this
    process since the last :meth:`take`. Thread-safe."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._since = time.monotonic()
        self._lock = threading.Lock()

    def add(self, outcome: str) -> None:
        with self._lock:
            self._counts[outcome] += 1

    def take(self) -> tuple[Counter[str], float]:
        """The counts so far and the seconds they cover; counting starts again from zero."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
            now, since, self._since = time.monotonic(), self._since, time.monotonic()
        return counts, now - since


DELIVERY_OUTCOMES = OutcomeCounts()
"""This process's delivery outcomes: counted by :mod:`ccm.messages.outcomes` as they are committed,
reported by the worker's throughput line (:class:`ccm.worker.ThroughputLog`). One per process, as
the line is."""


def throughput_line(counts: Counter[str], seconds: float) -> str | None:
    """``delivered 1,234 messages in the last 60 s (20.6/s); 3 failed, 10 skipped`` — or None
    when nothing happened. Sent and delivered both count as delivered (handed to the provider)."""
    if not counts:
        return None
    delivered = counts["delivered"] + counts["sent"]
    others = [
        f"{counts[name]:,} {name}" for name in sorted(counts) if name not in ("delivered", "sent", "failed", "skipped")
    ]
    return (
        f"delivered {delivered:,} messages in the last {seconds:.3g} s ({delivered / max(seconds, 0.001):.1f}/s); "
        + ", ".join([f"{counts['failed']:,} failed", f"{counts['skipped']:,} skipped", *others])
    )
