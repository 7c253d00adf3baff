"""The buffer between the tracking endpoints and the database: hits are answered at once and
written in batches by a worker (Redis in production, a list in process on the embedded default).

Taking a batch moves it to a "processing" list; only after the events are committed is that list
cleared. A writer that dies in between leaves the batch there for the next one, which records it
again: events are deduplicated on the hit id, so nothing is lost or counted twice.
"""

from __future__ import annotations

import threading
from collections import deque

import redis

from ccm.engagement.tracking import Hit

_TAKE = """
local leftover = redis.call('LRANGE', KEYS[2], 0, -1)
if #leftover > 0 then return leftover end
for i = 1, tonumber(ARGV[1]) do
  if not redis.call('RPOPLPUSH', KEYS[1], KEYS[2]) then break end
end
return redis.call('LRANGE', KEYS[2], 0, -1)
"""


class HitBuffer:
    def __init__(self, client: redis.Redis | None, *, namespace: str) -> None:
        self.client = client
        self.key, self.processing, self.lock = (
            f"{namespace}:hits",
            f"{namespace}:hits:processing",
            f"{namespace}:hits:lock",
        )
        self._take = client.register_script(_TAKE) if client is not None else None
        self._pending: deque[str] = deque()
        self._in_progress: list[str] = []
        self._mutex = threading.Lock()

    def push(self, hit: Hit) -> None:
        if self.client is None:
            self._pending.append(hit.to_json())
        else:
            self.client.lpush(self.key, hit.to_json())

    def take(self, limit: int) -> list[Hit]:
        """A batch to record (the previous one again if it was never marked done)."""
        if self.client is None:
            with self._mutex:
                if not self._in_progress:
                    while self._pending and len(self._in_progress) < limit:
                        self._in_progress.append(self._pending.popleft())
                return [Hit.from_json(raw) for raw in self._in_progress]
        if not self.client.set(self.lock, 1, nx=True, px=30_000):
            return []  # another worker process is writing a batch
        assert self._take is not None, "registered with the client"
        batch = [Hit.from_json(raw) for raw in self._take(keys=[self.key, self.processing], args=[limit])]
        if not batch:
            self.release()  # nothing to write: the next tick must not wait for the lock to expire
        return batch

    def done(self) -> None:
        if self.client is None:
            with self._mutex:
                self._in_progress.clear()
            return
        pipe = self.client.pipeline()
        pipe.delete(self.processing)
        pipe.delete(self.lock)
        pipe.execute()

    def release(self) -> None:
        """Give up the batch without recording it (it will be taken again)."""
        if self.client is not None:
            self.client.delete(self.lock)
