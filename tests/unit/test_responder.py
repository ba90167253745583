"""The responder's life cycle: stopped before anything is closed, from any thread, any order.

No sockets here (no owned address opens none): these are the ordering rules that keep the
answering thread from reading a descriptor that ``close`` closed (issue 14, item 4). The same
under real traffic and SIGTERM is tests/network/test_responder_sigterm.py.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
from collections.abc import Iterator

import pytest

from lbctl.announce.responder import Responder
from lbctl.interfaces import Link


@pytest.fixture
def thread_errors() -> Iterator[list[threading.ExceptHookArgs]]:
    """Exceptions that escaped any thread during the test."""
    seen: list[threading.ExceptHookArgs] = []
    old = threading.excepthook
    threading.excepthook = seen.append
    try:
        yield seen
    finally:
        threading.excepthook = old


def closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


def test_close_stops_the_answering_thread_before_it_closes_the_pipe(
    thread_errors: list[threading.ExceptHookArgs], caplog: pytest.LogCaptureFixture
) -> None:
    r = Responder()
    stop = threading.Event()
    thread = r.start(stop)
    fds = (r._wake_r, r._wake_w)
    r.set_owned({})
    r.close()
    assert not thread.is_alive()
    assert all(closed(fd) for fd in fds)
    assert thread_errors == []
    assert [rec for rec in caplog.records if rec.levelno >= logging.WARNING] == []


def test_a_thread_started_after_close_returns_at_once() -> None:
    r = Responder()
    r.close()
    thread = r.start(threading.Event())
    thread.join(2)
    assert not thread.is_alive()


def test_after_close_set_owned_and_announce_do_nothing_and_close_again_is_harmless(
    thread_errors: list[threading.ExceptHookArgs],
) -> None:
    r = Responder()
    r.start(threading.Event())
    r.close()
    link = Link(index=1, name="lo", mac="00:00:00:00:00:00", up=True)
    ip = ipaddress.ip_address("198.51.100.1")
    r.set_owned({ip: (link,)})
    assert r.announce(ip, link) == 0
    r.close()
    assert thread_errors == []


def test_shutdown_racing_ownership_changes_never_raises_in_any_thread(
    thread_errors: list[threading.ExceptHookArgs], caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(200):
        r = Responder()
        stop = threading.Event()
        r.start(stop)
        churn = threading.Thread(target=lambda r=r: [r.set_owned({}) for _ in range(50)])
        churn.start()
        if _ % 2:
            stop.set()  # SIGTERM's path: the stop event first, then the speaker's shutdown
        r.set_owned({})
        r.close()
        churn.join()
    assert thread_errors == []
    assert [rec for rec in caplog.records if rec.levelno >= logging.WARNING] == []
