"""One background thread that interrupts code running past its deadline.

A template can spin in pure-Python loops that never call back into code we control, so the only
way to stop it from outside is to raise an exception in its thread with
``PyThreadState_SetAsyncExc``. Each guarded block registers a deadline; a single daemon thread
per process sleeps until the earliest one and interrupts the thread if its block is still
running.

Every deadline fires at most once, and firing and finishing both happen under one lock, so the
exception never reaches code outside the guarded block: either it is raised inside the block,
or the block finishes first and the watchdog skips it, or the watchdog fires just as the block
finishes and the block clears the pending exception before it leaves.

The exception can land at any bytecode boundary of the interrupted thread, including inside
Python-level lock helpers such as ``threading.Condition.__enter__``, where it would leave the
lock held for good. So the interrupted thread only touches plain ``threading.Lock`` objects,
whose ``with`` handling is done in C, and the watchdog sleeps on a lock instead of a condition.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class DeadlineExceeded(BaseException):
    """Raised asynchronously in a thread whose guarded block ran past its deadline.

    A ``BaseException`` so that ``except Exception`` blocks in the interrupted code (Jinja has
    several) cannot swallow it.
    """

    suspended_at: tuple[str | None, int | None] = (None, None)
    """The template source and line of the render it interrupted, when its catcher can tell."""


# Own prototypes rather than setting argtypes on the shared ``ctypes.pythonapi`` function, and
# two of them because clearing needs a real NULL, which a ``py_object`` argument cannot carry.
_raise_in_thread = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)
_clear_in_thread = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)


@dataclass(eq=False, slots=True)
class _Ticket:
    thread_id: int
    deadline: float
    done: bool = False
    fired: bool = False


class Watchdog:
    """Interrupts guarded blocks that outlive their deadline; safe to share between threads.

    The thread starts on first use, and again in a forked child, which does not inherit it.
    """

    def __init__(self) -> None:
        self._start_fresh()
        os.register_at_fork(after_in_child=self._start_fresh)

    def _start_fresh(self) -> None:
        self._lock = threading.Lock()
        # Held by the watchdog while it sleeps; releasing it wakes the watchdog early.
        self._wakeup = threading.Lock()
        self._heap: list[tuple[float, int, _Ticket]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    @contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        """Run the block, raising `DeadlineExceeded` inside it if it takes longer than ``seconds``.

        The exception lands at the next bytecode boundary; a single long C call (one huge
        string operation, say) finishes first, so callers must bound those themselves.
        """
        ticket = _Ticket(threading.get_ident(), time.monotonic() + seconds)
        try:
            self._arm(ticket)
            yield
        finally:
            self._disarm(ticket)

    def _arm(self, ticket: _Ticket) -> None:
        with self._lock:
            if self._thread is None:
                self._wakeup.acquire()
                self._thread = threading.Thread(target=self._run, name="template-watchdog", daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, (ticket.deadline, next(self._order), ticket))
            if self._heap[0][2] is ticket and self._wakeup.locked():
                self._wakeup.release()

    def _disarm(self, ticket: _Ticket) -> None:
        with self._lock:
            ticket.done = True
            if ticket.fired:
                _clear_in_thread(ticket.thread_id, None)

    def _run(self) -> None:
        while True:
            with self._lock:
                timeout = self._fire_due(time.monotonic())
            self._wakeup.acquire(timeout=timeout)

    def _fire_due(self, now: float) -> float:
        """Fire expired tickets, drop finished ones from the top, and return how long to sleep."""
        # Dropping finished tickets before their deadline keeps the top of the heap on a block
        # that is still running, so the watchdog wakes about once per timeout, not per block.
        while self._heap and (self._heap[0][2].done or self._heap[0][0] <= now):
            ticket = heapq.heappop(self._heap)[2]
            if not ticket.done:
                ticket.fired = True
                _raise_in_thread(ticket.thread_id, DeadlineExceeded)
        return self._heap[0][0] - now if self._heap else -1


WATCHDOG = Watchdog()
"""The process-wide watchdog: one thread serves every sandbox."""
