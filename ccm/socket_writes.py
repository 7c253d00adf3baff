"""Small writes on many sockets with as little between them as the kernel allows.

The batched delivery finishes a batch by writing every SMTP final dot the instant its intent's
``COMMIT`` leaves for PostgreSQL (ccm/db_commit.py). A worker killed between those writes loses
the messages whose dot had not left: recorded as handed over, never sent. Two ways to write:

- :func:`write_together` puts all the writes in **one system call**: an io_uring submission of one
  ``send`` per socket, each non-blocking, all issued by the kernel before the call returns. A
  SIGKILL acts only when a system call returns to user space, so it falls before all of them or
  after all of them, never in between; what was written stays in the sockets' send buffers and
  leaves after the process is gone (its close sends them, then FIN). Plain TCP and Unix sockets
  only: a TLS record is encrypted in this process, write by write. None where the kernel or a
  seccomp profile (Docker's default one) refuses io_uring, or a socket is TLS.
- :func:`write_each` writes them one after another, plain TCP through libc's ``send`` called with
  the GIL held (``ctypes.PyDLL``: Python's socket writes release it, and getting it back can take
  a whole 5 ms switch interval while other threads render), TLS through ``sendall`` with the
  switch interval cut to :data:`TLS_SWITCH_INTERVAL`. About 15 µs a write on loopback.

Both answer the failures by position; a write the socket took only part of is finished with
``sendall`` after the others.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import mmap
import os
import platform
import socket
import ssl
import struct
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

log = logging.getLogger(__name__)

Write = tuple[socket.socket | int | None, bytes]
"""A socket (or its file descriptor; None: a connection closed meanwhile) and the bytes for it."""

TLS_SWITCH_INTERVAL: float | None = 0.0001
"""Seconds: the switch interval while TLS writes are made (None: leave it as it is)."""
_SENDALL_TIMEOUT = 60.0
"""Seconds for the rest of a write that did not fit at once, on a bare file descriptor."""
USE_IO_URING = True
"""False: :func:`write_together` always declines (benchmarks compare the two ways with it)."""

# MSG_NOSIGNAL: a connection the peer closed answers EPIPE instead of killing the process.
_FLAGS = getattr(socket, "MSG_DONTWAIT", 0) | getattr(socket, "MSG_NOSIGNAL", 0)


def _libc() -> ctypes.PyDLL | None:
    """libc, its functions called with the GIL held (PyDLL); None where it cannot be loaded."""
    try:
        return ctypes.PyDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def _libc_send() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    send = getattr(_LIBC, "send", None)
    if send is not None:
        send.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
        send.restype = ctypes.c_ssize_t
    return send


_send = _libc_send()


def write_together(writes: Sequence[Write]) -> dict[int, OSError] | None:
    """Every write in one system call (io_uring); the failures by position, or None — nothing
    written — where that cannot be done here (see the module docstring).

    Raises:
      OSError: the kernel refused the submission: nothing was written.
    """
    if not writes or any(isinstance(sock, ssl.SSLSocket) for sock, _ in writes):
        return None
    ring = _thread_ring()
    if ring is None or len(writes) > ring.entries:
        return None
    failed: dict[int, OSError] = {}
    pieces: list[tuple[int, bytes]] = []
    positions: list[int] = []
    for n, (sock, data) in enumerate(writes):
        if sock is None:  # closed by close() from another thread
            failed[n] = ConnectionError("the connection was closed")
        else:
            pieces.append((sock if isinstance(sock, int) else sock.fileno(), data))
            positions.append(n)
    rest: list[tuple[int, socket.socket | int, bytes]] = []
    try:
        results = ring.send_all(pieces)
    finally:
        if ring.broken:
            _rings.ring = None
            ring.close()
    for n, (fd, data), sent in zip(positions, pieces, results, strict=True):
        if sent in (-errno.EAGAIN, -errno.ECANCELED):
            rest.append((n, fd, data))
        elif sent < 0:
            failed[n] = OSError(-sent, os.strerror(-sent))
        elif sent < len(data):
            rest.append((n, fd, data[sent:]))
    _finish(rest, failed)
    return failed


def write_each(writes: Sequence[Write]) -> dict[int, OSError]:
    """Every write, one after another with nothing of this process in between where it can be
    helped; the failures by position."""
    failed: dict[int, OSError] = {}
    later: list[tuple[int, socket.socket | int, bytes]] = []
    for n, (sock, data) in enumerate(writes):
        if sock is None:  # closed by close() from another thread
            failed[n] = ConnectionError("the connection was closed")
        elif _send is None or isinstance(sock, ssl.SSLSocket):
            later.append((n, sock, data))
        else:
            sent = _send(sock if isinstance(sock, int) else sock.fileno(), data, len(data), _FLAGS)
            if sent < 0:
                code = ctypes.get_errno()
                if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                    later.append((n, sock, data))
                else:
                    failed[n] = OSError(code, os.strerror(code))
            elif sent < len(data):
                later.append((n, sock, data[sent:]))
    _finish(later, failed)
    return failed


def _finish(later: list[tuple[int, socket.socket | int, bytes]], failed: dict[int, OSError]) -> None:
    """The writes a socket could not take at once, with ``sendall`` (it may wait)."""
    tls = any(isinstance(sock, ssl.SSLSocket) for _, sock, _ in later)
    with _quick_handoffs(tls):
        for n, sock, rest in later:
            try:
                if isinstance(sock, int):
                    with socket.socket(fileno=os.dup(sock)) as dup:
                        dup.settimeout(_SENDALL_TIMEOUT)  # non-blocking underneath, as its owner keeps it
                        dup.sendall(rest)
                else:
                    sock.sendall(rest)
            except OSError as exc:
                failed[n] = exc


# io_uring, through its three system calls (the same numbers on every Linux architecture's
# generic table) and its rings mapped into this process: what liburing does, for one operation.
_SYS_IO_URING_SETUP = 425
_SYS_IO_URING_ENTER = 426
_IORING_OP_SEND = 26  # Linux 5.6
_IORING_ENTER_GETEVENTS = 1
_IORING_FEAT_SINGLE_MMAP = 1
_IORING_OFF_SQ_RING = 0
_IORING_OFF_CQ_RING = 0x8000000
_IORING_OFF_SQES = 0x10000000
_SQE = struct.Struct("<BBHiQQIIQHHiQQ")  # struct io_uring_sqe, 64 bytes
_CQE = struct.Struct("<QiI")  # struct io_uring_cqe, 16 bytes
_U32 = struct.Struct("<I")
_RING_ENTRIES = 128
"""Submission entries per thread's ring: the most writes :func:`write_together` takes at once."""


class _Ring:
    """One io_uring instance: submission and completion rings, used by one thread."""

    def __init__(self, entries: int) -> None:
        params = (ctypes.c_uint32 * 30)()  # struct io_uring_params, 120 bytes
        fd = _syscall(_SYS_IO_URING_SETUP, entries, ctypes.addressof(params))
        if fd < 0:
            raise OSError(-fd, os.strerror(-fd))
        self.fd = fd
        self.broken = False
        try:
            self._map(params)
        except BaseException:
            os.close(fd)
            raise

    def _map(self, p: ctypes.Array[ctypes.c_uint32]) -> None:
        self.entries = p[0]
        cq_entries, features = p[1], p[5]
        sq_head, sq_tail, sq_mask, _, _, _, sq_array = p[10:17]
        cq_head, cq_tail, cq_mask, _, _, cqes = p[20:26]
        self._sq = (sq_tail, sq_array)
        self._cq = (cq_head, cq_tail, cqes)
        sq_size = sq_array + self.entries * 4
        cq_size = cqes + cq_entries * _CQE.size
        protection, flags = mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        if features & _IORING_FEAT_SINGLE_MMAP:
            self._sq_ring = self._cq_ring = mmap.mmap(
                self.fd, max(sq_size, cq_size), flags, protection, offset=_IORING_OFF_SQ_RING
            )
        else:
            self._sq_ring = mmap.mmap(self.fd, sq_size, flags, protection, offset=_IORING_OFF_SQ_RING)
            self._cq_ring = mmap.mmap(self.fd, cq_size, flags, protection, offset=_IORING_OFF_CQ_RING)
        self._sqes = mmap.mmap(self.fd, self.entries * _SQE.size, flags, protection, offset=_IORING_OFF_SQES)
        self._sq_mask = _U32.unpack_from(self._sq_ring, sq_mask)[0]
        self._cq_mask = _U32.unpack_from(self._cq_ring, cq_mask)[0]

    def send_all(self, pieces: Sequence[tuple[int, bytes]]) -> list[int]:
        """``send(fd, data, MSG_DONTWAIT | MSG_NOSIGNAL)`` for every piece, submitted in one system
        call; what each returned (bytes written, or minus an errno; ``-ECANCELED``: never issued,
        as the kernel took only the pieces before it — the ring is then :attr:`broken`).

        Raises:
          OSError: the kernel took none of them: nothing was written (the ring is broken).
        """
        block = ctypes.create_string_buffer(b"".join(data for _, data in pieces))
        base = ctypes.addressof(block)
        sq_tail, sq_array = self._sq
        tail = _U32.unpack_from(self._sq_ring, sq_tail)[0]
        offset = 0
        for n, (fd, data) in enumerate(pieces):
            slot = (tail + n) & self._sq_mask
            _SQE.pack_into(self._sqes, slot * _SQE.size, _IORING_OP_SEND, 0, 0, fd, 0, base + offset, len(data),
                           _FLAGS, n, 0, 0, 0, 0, 0)  # fmt: skip
            _U32.pack_into(self._sq_ring, sq_array + slot * 4, slot)
            offset += len(data)
        _U32.pack_into(self._sq_ring, sq_tail, (tail + len(pieces)) & 0xFFFFFFFF)
        submitted = _syscall(_SYS_IO_URING_ENTER, self.fd, len(pieces), 0, 0, 0, 0)
        if submitted != len(pieces):  # entries left in the ring would go with the next call
            self.broken = True
        if submitted <= 0:
            raise OSError(-submitted or errno.EIO, "io_uring took none of the writes")
        results = self._reap(submitted) + [-errno.ECANCELED] * (len(pieces) - submitted)
        del block  # every issued send completed (MSG_DONTWAIT) and the kernel copied its bytes
        return results

    def _reap(self, count: int) -> list[int]:
        results = [-errno.EINPROGRESS] * count
        cq_head, cq_tail, cqes = self._cq
        seen = 0
        while seen < count:
            head = _U32.unpack_from(self._cq_ring, cq_head)[0]
            tail = _U32.unpack_from(self._cq_ring, cq_tail)[0]
            if head == tail:  # not yet complete (not expected with MSG_DONTWAIT): wait, GIL released
                waited = _syscall(_SYS_IO_URING_ENTER, self.fd, 0, count - seen, _IORING_ENTER_GETEVENTS, waiting=True)
                if waited < 0 and waited != -errno.EINTR:
                    raise OSError(-waited, os.strerror(-waited))
                continue
            while head != tail:
                user_data, res, _ = _CQE.unpack_from(self._cq_ring, cqes + (head & self._cq_mask) * _CQE.size)
                results[user_data] = res
                head = (head + 1) & 0xFFFFFFFF
                seen += 1
            _U32.pack_into(self._cq_ring, cq_head, head)
        return results

    def close(self) -> None:
        """Unmap the rings and close the instance (a thread's ring, when the thread ends)."""
        if self.fd < 0:
            return
        for ring in {id(m): m for m in (self._sq_ring, self._cq_ring, self._sqes)}.values():
            ring.close()
        os.close(self.fd)
        self.fd = -1

    __del__ = close


def _syscall_function(library: ctypes.CDLL | None) -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    function = getattr(library, "syscall", None)
    if function is not None:
        function.restype = ctypes.c_long
        function.argtypes = [ctypes.c_long] * 7
    return function


_raw_syscall = _syscall_function(_LIBC)  # GIL held: nothing of this process runs in between
_raw_syscall_waiting = _syscall_function(ctypes.CDLL(None, use_errno=True) if _LIBC is not None else None)


def _syscall(number: int, *args: int, waiting: bool = False) -> int:
    """``syscall(number, *args)``: its result, or minus the errno. ``waiting``: the call may block,
    so it releases the GIL."""
    function = _raw_syscall_waiting if waiting else _raw_syscall
    assert function is not None
    result = function(number, *args, *([0] * (6 - len(args))))
    return -ctypes.get_errno() if result < 0 else int(result)


class _Rings(threading.local):
    ring: _Ring | None = None


_rings = _Rings()
_unavailable: str | None = (
    None if sys.platform == "linux" and _raw_syscall is not None else f"not on Linux ({platform.system()})"
)


def _thread_ring() -> _Ring | None:
    """This thread's ring, made on first use; None if io_uring is not available here."""
    global _unavailable
    if _unavailable is not None or not USE_IO_URING:
        return None
    if _rings.ring is None:
        try:
            _rings.ring = _Ring(_RING_ENTRIES)
        except OSError as exc:  # ENOSYS (old kernel), EPERM (seccomp, io_uring_disabled), ENOMEM
            _unavailable = f"io_uring_setup failed: {exc}"
            log.warning(
                "io_uring is not available (%s): a batch's final dots follow its COMMIT instead of leaving"
                " with it, and a worker killed in between loses those not yet written (README, Recovery)",
                _unavailable,
            )
            return None
    return _rings.ring


def io_uring_unavailable() -> str | None:
    """Why :func:`write_together` cannot be used in this process, or None if it can."""
    _thread_ring()
    return _unavailable


def _forget_rings() -> None:
    # A forked child shares its parent's rings: it must make its own.
    global _rings
    _rings = _Rings()


os.register_at_fork(after_in_child=_forget_rings)


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
