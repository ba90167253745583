"""The test bed's one way to wait: poll a condition, or retry a call while its error passes."""

from __future__ import annotations

import pytest

from lbctl.lab import waits


def test_until_returns_the_first_truthy_answer() -> None:
    answers = iter([None, [], ["198.51.100.7"]])
    assert waits.until(lambda: next(answers), timeout=5, interval=0) == ["198.51.100.7"]


def test_until_gives_up_with_the_last_answer() -> None:
    with pytest.raises(waits.TimedOut) as caught:
        waits.until(lambda: [], timeout=0.05, interval=0.01)
    assert caught.value.last == []


def test_an_error_in_the_probe_ends_the_wait_at_once() -> None:
    calls = []

    def probe() -> bool:
        calls.append(1)
        raise RuntimeError("the process died")

    with pytest.raises(RuntimeError):
        waits.until(probe, timeout=5, interval=0)
    assert len(calls) == 1


def test_retrying_repeats_while_the_error_passes_and_tells_each_one() -> None:
    errors = iter([KeyError("not yet"), KeyError("not yet")])
    heard: list[BaseException] = []

    def call() -> str:
        error = next(errors, None)
        if error:
            raise error
        return "token"

    got = waits.retrying(
        call, passes=lambda e: isinstance(e, KeyError), timeout=5, interval=0, waiting=heard.append
    )
    assert got == "token" and len(heard) == 2


@pytest.mark.parametrize(
    ("says", "error", "timeout"),
    [
        ("an error that does not pass is raised at once", ValueError("refused"), 5.0),
        ("an error that passes is raised after the timeout", KeyError("never"), 0.05),
    ],
)
def test_retrying_raises(says: str, error: Exception, timeout: float) -> None:
    def call() -> None:
        raise error

    with pytest.raises(type(error)):
        waits.retrying(call, passes=lambda e: isinstance(e, KeyError), timeout=timeout, interval=0)
