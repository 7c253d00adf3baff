"""Make pytest's log capture safe against loggers created by other threads.

pytest 9 (9.2 here) starts each test phase by attaching its log handlers to every non-propagating
logger, iterating ``logging.root.manager.loggerDict`` without the logging module's lock. A logger
created by another thread at that instant ends the phase with ``RuntimeError: dictionary changed
size during iteration`` — and the suite's worker threads do create loggers: Dramatiq names one per
consumer class the first time a consumer starts (``dramatiq.brokers.rabbitmq._RabbitmqConsumer``),
inside the consumer's thread. CI failed a RabbitMQ test that way, in pytest's code, not CCM's.

:func:`install` swaps the registry for a dict whose ``values()`` is a copy taken under the logging
lock (which ``logging.getLogger`` holds while it adds one). Nothing else about the dict changes.
"""

from __future__ import annotations

import logging
from typing import Any


class _LockedValues(dict[str, Any]):
    def values(self) -> list[Any]:  # type: ignore[override]
        with _LOCK:
            return list(super().values())


_LOCK: Any = logging._lock  # type: ignore[attr-defined]  # the RLock logging.getLogger holds


def install() -> None:
    manager = logging.root.manager
    with _LOCK:
        if not isinstance(manager.loggerDict, _LockedValues):
            manager.loggerDict = _LockedValues(manager.loggerDict)
