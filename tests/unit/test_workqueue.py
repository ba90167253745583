"""The work queue: de-duplicates waiting keys, keeps order, delays re-adds, never loses one."""

from __future__ import annotations

from lbctl.workqueue import WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_waiting_key_is_queued_once_and_order_is_kept() -> None:
    q: WorkQueue[str] = WorkQueue()
    for key in ["a", "b", "a", "c", "b"]:
        q.add(key)
    assert [q.get(0), q.get(0), q.get(0), q.get(0)] == ["a", "b", "c", None]


def test_a_key_added_while_being_processed_comes_back_after_done() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    assert q.get(0) == "a"
    q.add("a")  # changed again while a worker handles it
    assert q.get(0) is None  # never to a second worker at the same time
    q.done("a")
    assert q.get(0) == "a"
    q.done("a")
    assert q.get(0) is None


def test_delayed_keys_wait_for_their_time() -> None:
    clock = Clock()
    q: WorkQueue[str] = WorkQueue(clock)
    q.add_after("later", 5)
    assert q.get(0) is None
    clock.now = 5
    assert q.get(0) == "later"


def test_close_wakes_a_waiting_worker() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.close()
    assert q.get() is None
