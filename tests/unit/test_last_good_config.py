"""The config in force: the last ConfigMap data that parsed, for the controller and speakers."""

from __future__ import annotations

import pytest

from lbctl import config

GOOD = "pools:\n  - name: lan\n    addresses: [198.51.100.10-198.51.100.11]\n"
OTHER = "pools:\n  - name: wan\n    addresses: [198.51.100.20-198.51.100.21]\n"
BAD = "pools: [{name: lan}]\n"


def data(text: str | None) -> dict[str, str] | None:
    return None if text is None else {config.CONFIG_KEY: text}


@pytest.mark.parametrize(
    ("says", "history", "result", "in_force"),
    [
        ("a first good config takes effect", [GOOD], "new", "lan"),
        ("the same text again is no change", [GOOD, GOOD], "unchanged", "lan"),
        ("a new good text replaces it", [GOOD, OTHER], "new", "wan"),
        ("a bad text is reported and the last good one stays", [GOOD, BAD], "error", "lan"),
        ("the same bad text again is not reported twice", [GOOD, BAD, BAD], "unchanged", "lan"),
        ("a bad first text leaves no config", [BAD], "error", None),
        ("good again after a bad one takes effect", [GOOD, BAD, GOOD], "new", "lan"),
        ("no data before any config is no change", [None], "unchanged", None),
    ],
)
def test_last_good(says: str, history: list[str | None], result: str, in_force: str | None) -> None:
    held = config.LastGood()
    got = None
    for text in history:
        got = held.update(data(text))
    kind = "unchanged" if got is None else "error" if isinstance(got, config.ConfigError) else "new"
    assert kind == result, says
    assert (held.config.pools[0].name if held.config else None) == in_force, says
