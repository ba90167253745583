"""Waiting on conditions in the test bed: every poll and retry loop, with tenacity (I/O: sleeps).

Two shapes: ``until`` polls a probe until it returns something truthy; ``retrying`` repeats a
call while it raises an error that passes shortly (a ServiceAccount not there yet, a LAN range
taken by another lab). Both give up after ``timeout`` seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import tenacity

T = TypeVar("T")


class TimedOut(Exception):
    """``until`` gave up; ``last`` is what the probe returned last."""

    def __init__(self, last: object) -> None:
        super().__init__(f"still {last!r}")
        self.last = last


def until(probe: Callable[[], T], *, timeout: float, interval: float) -> T:
    """``probe()`` again every ``interval`` s until it returns something truthy; that value.

    Raises ``TimedOut`` after ``timeout`` s; an exception from ``probe`` ends the wait at once.
    """
    polling = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda value: not value),
        stop=tenacity.stop_after_delay(timeout),
        wait=tenacity.wait_fixed(interval),
    )
    try:
        return polling(probe)
    except tenacity.RetryError as exc:
        raise TimedOut(exc.last_attempt.result()) from None


def retrying(
    call: Callable[[], T],
    *,
    passes: Callable[[BaseException], bool],
    timeout: float,
    interval: float,
    waiting: Callable[[BaseException], None] = lambda exc: None,
) -> T:
    """``call()``, again every ``interval`` s while it raises an error that ``passes`` says
    will pass; after ``timeout`` s that error is raised. ``waiting`` hears each retried error."""

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if error is not None:
            waiting(error)

    attempts = tenacity.Retrying(
        retry=tenacity.retry_if_exception(passes),
        stop=tenacity.stop_after_delay(timeout),
        wait=tenacity.wait_fixed(interval),
        before_sleep=before_sleep,
        reraise=True,
    )
    return attempts(call)
