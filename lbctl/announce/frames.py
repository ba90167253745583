"""Reading raw sockets in bounded bites (I/O)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

BITE = 64  # frames read from one socket before the others get a turn
FRAME_MAX = 2048  # bytes: an Ethernet frame, with room to spare


def read_waiting(sock: socket.socket, most: int = BITE) -> Iterator[bytes]:
    """The frames already waiting on a non-blocking socket, at most ``most`` of them, so one
    busy socket (an interface flooded with requests) cannot starve the others or the sender.

    Stops at the first error: nothing more waiting (``BlockingIOError``), a signal
    (``InterruptedError``), or the link gone (any other ``OSError``): the next wake-up of the
    caller's ``select`` tries again."""
    for _ in range(most):
        try:
            frame = sock.recv(FRAME_MAX)
        except OSError:
            return
        yield frame
