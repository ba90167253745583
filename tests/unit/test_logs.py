"""Log lines: text by default, one JSON object a line with --log-format json; an unverified
API server is said once, not on every request."""

from __future__ import annotations

import json
import logging
import sys
import warnings

import pytest
import urllib3

from lbctl import logs, settings
from lbctl.kube import client as kclient


def record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            info = sys.exc_info()
    return logging.LogRecord("lbctl.speaker", logging.WARNING, __file__, 1, msg, args, info)


@pytest.mark.parametrize(
    ("says", "rec", "fields"),
    [
        (
            "a message has its arguments filled in",
            record("announcing %s on %s", "198.51.100.200", "eth0"),
            {"level": "warning", "logger": "lbctl.speaker",
             "message": "announcing 198.51.100.200 on eth0"},
        ),
        (
            "newlines and quotes stay inside one line",
            record('bad config:\n  pools[0].name: "x y"'),
            {"message": 'bad config:\n  pools[0].name: "x y"'},
        ),
        (
            "an exception goes in its own field",
            record("recomputing announcements", exc=True),
            {"message": "recomputing announcements"},
        ),
    ],
)  # fmt: skip
def test_json_logs_are_one_object_a_line(
    says: str, rec: logging.LogRecord, fields: dict[str, str]
) -> None:
    line = logs.JsonFormatter().format(rec)
    assert "\n" not in line, says
    entry = json.loads(line)
    assert fields.items() <= entry.items(), says
    assert entry["time"].endswith("+00:00")
    assert ("exception" in entry) == (rec.exc_info is not None)
    if rec.exc_info:
        assert "RuntimeError: boom" in entry["exception"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [([], "text"), (["--log-format", "json"], "json")],
)
def test_log_format_is_a_setting_with_text_as_default(argv: list[str], expected: str) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    settings.add_flags(parser, settings.CommonSettings)
    assert settings.load(settings.CommonSettings, parser.parse_args(argv)).log_format == expected


def test_an_unknown_log_format_is_refused_by_the_flag() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    settings.add_flags(parser, settings.CommonSettings)
    with pytest.raises(SystemExit):
        parser.parse_args(["--log-format", "xml"])


def test_skipping_tls_verification_is_said_once_and_urllib3_stops_repeating_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    choice = kclient.Choice(kclient.Source.FLAG, "/k/config")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", urllib3.exceptions.InsecureRequestWarning)
        with caplog.at_level(logging.WARNING):
            assert kclient.warn_once_if_unverified(False, choice)
        for _ in range(3):  # what urllib3 does on every request
            warnings.warn(
                "Unverified HTTPS request", urllib3.exceptions.InsecureRequestWarning, stacklevel=1
            )
    assert seen == []
    assert [r.getMessage() for r in caplog.records if "TLS verification" in r.getMessage()] == [
        "TLS verification of the API server is off (insecure-skip-tls-verify in /k/config): "
        "anyone on the path can impersonate it; give the kubeconfig its CA instead"
    ]


def test_a_verified_connection_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert not kclient.warn_once_if_unverified(True, kclient.Choice(kclient.Source.HOME, "x"))
    assert caplog.records == []
