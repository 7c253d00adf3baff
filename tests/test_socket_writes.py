"""ccm/socket_writes.py: both ways of writing deliver every byte, in order, to every socket; a
write that fails is reported by its position while the others are made; a write the socket could
not take at once is finished once its peer reads. ``write_together`` declines TLS sockets."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from ccm import socket_writes
from ccm.socket_writes import write_each, write_together


def _together(writes):
    if socket_writes.io_uring_unavailable():
        pytest.skip(f"io_uring is not available here: {socket_writes.io_uring_unavailable()}")
    failed = write_together(writes)
    assert failed is not None
    return failed


WAYS: dict[str, Callable] = {"one system call": _together, "one after another": write_each}


@pytest.fixture(params=list(WAYS))
def write(request: pytest.FixtureRequest) -> Callable:
    return WAYS[request.param]


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    """Three connected loopback TCP pairs: (ours, the peer's)."""
    with socket.create_server(("127.0.0.1", 0), backlog=3) as server:
        found = []
        for _ in range(3):
            ours = socket.create_connection(server.getsockname())
            theirs, _ = server.accept()
            theirs.settimeout(5)
            found.append((ours, theirs))
    yield found
    for ours, theirs in found:
        ours.close()
        theirs.close()


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_every_socket_gets_its_bytes_in_order(write, pairs):
    for round_ in range(3):
        assert write([(ours, b"%d:%d." % (round_, n)) for n, (ours, _) in enumerate(pairs)]) == {}
    for n, (_, theirs) in enumerate(pairs):
        assert _read(theirs, 12) == b"0:%d.1:%d.2:%d." % (n, n, n)


def test_a_failed_write_is_reported_by_position_and_the_others_are_made(write, pairs):
    (first, first_peer), (broken, broken_peer), (last, last_peer) = pairs
    broken_peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    broken_peer.close()  # linger 0: a reset, so the next write on ``broken`` fails
    time.sleep(0.05)
    failed = write([(first, b"one"), (broken, b"lost"), (None, b"closed"), (last, b"two")])
    assert sorted(failed) == [1, 2]
    assert _read(first_peer, 3) == b"one" and _read(last_peer, 3) == b"two"


def test_a_write_the_socket_cannot_take_at_once_is_finished_when_the_peer_reads(write, pairs):
    (ours, theirs), (other, other_peer) = pairs[0], pairs[1]
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = bytes(range(256)) * 4096  # 1 MiB: far more than the two buffers hold
    got: list[bytes] = []
    reader = threading.Timer(0.2, lambda: got.append(_read(theirs, len(big))))
    reader.start()
    assert write([(ours, big), (other, b"small")]) == {}
    reader.join()
    assert got == [big]
    assert _read(other_peer, 5) == b"small"


def test_tls_sockets_are_left_to_write_each(pairs):
    context = ssl.create_default_context()
    tls = context.wrap_socket(socket.socket(), do_handshake_on_connect=False, server_hostname="x")
    with tls:
        assert write_together([(pairs[0][0], b"plain"), (tls, b"encrypted")]) is None
    pairs[0][1].setblocking(False)
    with pytest.raises(BlockingIOError):  # nothing was written, not even to the plain socket
        pairs[0][1].recv(10)
