"""The final dots of a batch of SMTP messages, written as close to the commit point as possible.

Between the moment the batch's intent is on its way to the database and a message's final dot, a
worker killed loses that message (recorded as handed over, never re-sent, never finished). Python's
socket writes release the GIL around the system call, and getting it back can take a whole switch
interval (5 ms) while other threads render: 50 dots could take 50 of those. The dots on plain TCP
sockets are therefore written by calling libc's ``send`` through ``ctypes.PyDLL``, which keeps the
GIL: 50 dots are 50 system calls with nothing of this process run in between. A TLS connection
must encrypt its dot, so it goes through ``SSLSocket.sendall`` after the plain ones, which releases
the GIL; while those are written the process's switch interval is cut to
:data:`TLS_SWITCH_INTERVAL`, so that getting it back waits for that, not for 5 ms.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

_DOT = b".\r\n"
# MSG_NOSIGNAL: a connection the server closed answers EPIPE instead of killing the process.
_FLAGS = getattr(socket, "MSG_DONTWAIT", 0) | getattr(socket, "MSG_NOSIGNAL", 0)
_RawSend = Callable[[int, bytes, int, int], int]
TLS_SWITCH_INTERVAL: float | None = 0.0001
"""Seconds: the switch interval while TLS dots are written (None: leave it as it is)."""


def _libc_send() -> _RawSend | None:
    """libc's ``send`` called with the GIL held (PyDLL), or None where it cannot be loaded."""
    try:
        send = ctypes.PyDLL(None, use_errno=True).send
    except (OSError, AttributeError):
        return None
    send.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
    send.restype = ctypes.c_ssize_t
    return send


_send = _libc_send()


def write_final_dots(sockets: Sequence[socket.socket | None]) -> dict[int, OSError]:
    """Write the final ``.`` of DATA on every socket; the failures, by position.

    A socket that takes only part of it at once (its send buffer full) gets the rest through
    ``sendall`` after the others."""
    failed: dict[int, OSError] = {}
    later: list[tuple[int, socket.socket, bytes]] = []
    for n, sock in enumerate(sockets):
        if sock is None:  # closed by close() from another thread
            failed[n] = ConnectionError("the connection was closed")
        elif _send is None or isinstance(sock, ssl.SSLSocket):
            later.append((n, sock, _DOT))
        else:
            sent = _send(sock.fileno(), _DOT, len(_DOT), _FLAGS)
            if sent < 0:
                code = ctypes.get_errno()
                if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                    later.append((n, sock, _DOT))
                else:
                    failed[n] = OSError(code, os.strerror(code))
            elif sent < len(_DOT):
                later.append((n, sock, _DOT[sent:]))
    with _quick_handoffs(bool(later)):
        for n, sock, rest in later:
            try:
                sock.sendall(rest)
            except OSError as exc:
                failed[n] = exc
    return failed


class _QuickHandoffs:
    """The switch interval cut to :data:`TLS_SWITCH_INTERVAL` while any thread is inside (it is
    process-wide: the first thread in cuts it, the last one out puts it back)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._usual = sys.getswitchinterval()

    @contextmanager
    def __call__(self, wanted: bool) -> Iterator[None]:
        interval = TLS_SWITCH_INTERVAL
        if not wanted or interval is None:
            yield
            return
        with self._lock:
            if self._inside == 0:
                self._usual = sys.getswitchinterval()
                sys.setswitchinterval(interval)
            self._inside += 1
        try:
            yield
        finally:
            with self._lock:
                self._inside -= 1
                if self._inside == 0:
                    sys.setswitchinterval(self._usual)


_quick_handoffs = _QuickHandoffs()
