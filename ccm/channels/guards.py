"""Per-provider rate limits and circuit breakers, shared by every worker process through Redis
(kept in process on the embedded default, where there is only one process).

The breaker opens after ``threshold`` consecutive failures (transient errors and configuration
errors) and stays open for ``cooldown`` seconds; while it is open, deliveries go to the next
provider of the channel. The rate limit is a one-second window per provider.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict

import redis


class ProviderGuards:
    def __init__(
        self, client: redis.Redis | None, *, namespace: str, threshold: int = 5, cooldown: float = 30.0
    ) -> None:
        self.client, self.namespace = client, namespace
        self.threshold, self.cooldown = threshold, cooldown
        self._lock = threading.Lock()
        self._failures: dict[str, int] = defaultdict(int)
        self._open_until: dict[str, float] = {}
        self._windows: dict[tuple[str, int], int] = defaultdict(int)
        self._seen: dict[str, tuple[bool, float]] = {}

    def admit(self, key: str, rate_per_second: float | None) -> str | None:
        """None when the provider may be called now; else why not (``circuit_open``, ``rate_limited``).
        Waits for the next one-second window once when the current one is full."""
        if self._is_open(key):
            return "circuit_open"
        if not rate_per_second:
            return None
        # A window long enough to hold one request (rates under 1/s), holding rate × window of them.
        window = max(1, math.ceil(1 / rate_per_second))
        limit = max(1, int(rate_per_second * window))
        for _ in range(2):
            if self._take(key, limit, window):
                return None
            time.sleep(window - time.time() % window)
        return "rate_limited"

    def succeeded(self, key: str) -> None:
        if self.client is None:
            with self._lock:
                self._failures.pop(key, None)
        elif self._failures.pop(key, 0):  # only talk to Redis when this process saw failures
            self.client.delete(self._key(key, "failures"))

    def failed(self, key: str) -> None:
        with self._lock:
            self._failures[key] += 1
        if self.client is None:
            with self._lock:
                if self._failures[key] >= self.threshold:
                    self._open_until[key], self._failures[key] = time.monotonic() + self.cooldown, 0
            return
        failures_key = self._key(key, "failures")
        if _count(self.client, failures_key, int(self.cooldown * 2) + 1) >= self.threshold:
            pipe = self.client.pipeline()
            pipe.set(self._key(key, "open"), 1, px=int(self.cooldown * 1000))
            pipe.delete(failures_key)
            pipe.execute()
            self._seen[key] = (True, time.monotonic() + 1.0)

    def _is_open(self, key: str) -> bool:
        now = time.monotonic()
        if self.client is None:
            return self._open_until.get(key, 0.0) > now
        # What Redis said is trusted for a second: asking it for every message would cost a round
        # trip per send, and a breaker that opens a second late changes nothing.
        known = self._seen.get(key)
        if known is None or known[1] < now:
            known = (bool(self.client.exists(self._key(key, "open"))), now + 1.0)
            self._seen[key] = known
        return known[0]

    def _take(self, key: str, limit: int, window: int) -> bool:
        slot = int(time.time()) // window
        if self.client is None:
            with self._lock:
                self._windows = defaultdict(int, {k: v for k, v in self._windows.items() if k[1] >= slot})
                self._windows[(key, slot)] += 1
                return self._windows[(key, slot)] <= limit
        return _count(self.client, self._key(key, f"rate:{window}:{slot}"), window + 1) <= limit

    def _key(self, key: str, what: str) -> str:
        return f"{self.namespace}:provider:{key}:{what}"


def _count(client: redis.Redis, name: str, ttl: int) -> int:
    """Increment the counter ``name`` and (re)set its expiry in one round trip; its new value."""
    pipe = client.pipeline()
    pipe.incr(name)
    pipe.expire(name, ttl)
    count, _ = pipe.execute()
    return int(count)
