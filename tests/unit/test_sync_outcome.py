"""How one sync of the controller's work queue ends: the pure decisions of ``reconcile``."""

from __future__ import annotations

import pytest

from lbctl import reconcile
from lbctl.reconcile import Failure, ReprocessAll, RetryAfter, Success

AT_ONCE = RetryAfter(0.0)
SOON = RetryAfter(0.05)
LATER_WARNED = RetryAfter(1.0, warn=True)
NOT_LEADER, API, OTHER = Failure.NOT_LEADER, Failure.API_ERROR, Failure.OTHER


@pytest.mark.parametrize(
    ("says", "failure", "status", "outcome"),
    [
        ("lost leadership is queued again at once", NOT_LEADER, None, AT_ONCE),
        ("a 409 conflict is looked at again soon", API, 409, SOON),
        ("a 404 (a deleted Service) is looked at again soon", API, 404, SOON),
        ("a 422 rejected write is retried after 1 s, with a warning", API, 422, LATER_WARNED),
        ("a 500 from the API server is retried after 1 s, with a warning", API, 500, LATER_WARNED),
        ("a 403 is retried after 1 s, with a warning", API, 403, LATER_WARNED),
        ("the API server unreachable retries after 1 s, with a warning", OTHER, None, LATER_WARNED),
        ("a status on a failure that is no API error does not count", OTHER, 409, LATER_WARNED),
    ],
)
def test_after_a_failed_sync(
    says: str, failure: Failure, status: int | None, outcome: RetryAfter
) -> None:
    assert reconcile.after_failure(failure, status) == outcome, says


@pytest.mark.parametrize(
    ("says", "changed", "outcome"),
    [
        ("a config or node change that took effect re-decides every Service", True, ReprocessAll()),
        ("one that changed nothing (or an invalid config) is done", False, Success()),
    ],
)
def test_after_a_shared_input(says: str, changed: bool, outcome: object) -> None:
    assert reconcile.after_input(changed) == outcome, says


@pytest.mark.parametrize(
    ("says", "expected", "version", "behind"),
    [
        ("with no write of ours pending, the cache is never behind", None, "5", False),
        ("an object older than our write is behind: wait for the informer", 7, "5", True),
        ("the object our write left is not behind", 7, "7", False),
        ("a newer object is not behind", 7, "9", False),
        ("a resourceVersion that is no integer is never skipped", 7, "abc", False),
        ("an empty resourceVersion is never skipped", 7, "", False),
    ],
)
def test_behind_our_own_write(says: str, expected: int | None, version: str, behind: bool) -> None:
    assert reconcile.behind(expected, version) is behind, says


def test_queue_items_are_services_or_shared_inputs() -> None:
    """A shared input is one item however often it changes; it is never a Service's key."""
    items: set[reconcile.Item] = {reconcile.Input.CONFIG, reconcile.Input.CONFIG}
    assert items == {reconcile.Input.CONFIG}
    assert not any(isinstance(i, str) for i in reconcile.Input)
