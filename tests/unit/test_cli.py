"""The lbctl command: validate checks a config offline with the controller's parser."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from unittest import mock

import config_fuzz
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lbctl import cli

GOOD = "pools: [{name: lan, addresses: [198.51.100.0/28, '2001:db8::/64']}]\n"


def test_validate_a_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "config.yaml"
    f.write_text(GOOD)
    assert cli.main(["validate", str(f)]) == 0
    out = capsys.readouterr().out
    assert "pool lan: 2 range(s), IPv4: 16, IPv6: 18446744073709551616" in out
    assert out.rstrip().endswith("valid")


def test_validate_a_whole_configmap_manifest(tmp_path: Path) -> None:
    f = tmp_path / "cm.yaml"
    f.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lbctl-config}\n"
        f"data:\n  config.yaml: |\n    {GOOD}"
    )
    assert cli.main(["validate", str(f)]) == 0


def test_validate_reports_every_problem_with_its_path_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("pools:\n  - name: a\n    addresses: [198.51.100.9-198.51.100.1]\n    x: 1\n")
    assert cli.main(["validate", str(f)]) == 1
    err = capsys.readouterr().err
    assert f"{f}: pools[0].x: unknown key" in err


def test_validate_lists_reservations_and_warns_about_one_its_pool_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "config.yaml"
    f.write_text(
        "pools:\n"
        "  - {name: lan, addresses: [198.51.100.0/28]}\n"
        "  - {name: team, addresses: [203.0.113.10], namespaces: [team-a]}\n"
        "reservations:\n"
        "  - {address: 198.51.100.5, service: default/web}\n"
        "  - {address: 203.0.113.10, service: default/api}\n"
    )
    assert cli.main(["validate", str(f)]) == 0  # the controller takes it as it is
    out, err = capsys.readouterr()
    assert "reservations[0]: 198.51.100.5 (pool lan) kept for default/web" in out
    assert err == (
        f"{f}: warning: reservations[1]: pool 'team' admits only namespaces team-a: "
        "default/api will be refused 203.0.113.10\n"
    )


def test_validate_names_a_bad_reservation_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "config.yaml"
    f.write_text(GOOD + "reservations: [{address: 203.0.113.1, service: default/web}]\n")
    assert cli.main(["validate", str(f)]) == 1
    assert f"{f}: reservations[0].address: 203.0.113.1 is in no pool" in capsys.readouterr().err


def test_validate_a_missing_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", "/nonexistent/config.yaml"]) == 2
    assert "cannot read" in capsys.readouterr().err


METALLB = """apiVersion: v1
kind: ConfigMap
metadata: {namespace: metallb-system, name: config}
data:
  config: |
    peers: [{peer-address: 10.0.0.1, peer-asn: 64501, my-asn: 64500}]
    address-pools:
    - {name: lan, protocol: layer2, addresses: [198.51.100.200-198.51.100.250]}
    - {name: bgp, protocol: bgp, addresses: [203.0.113.0/28]}
"""


def test_convert_prints_an_applyable_configmap_and_notes_what_was_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "metallb.yaml"
    f.write_text(METALLB)
    assert cli.main(["convert", "--from", "metallb", str(f)]) == 0
    out, err = capsys.readouterr()
    converted = tmp_path / "lbctl.yaml"
    converted.write_text(out)
    assert cli.main(["validate", str(converted)]) == 0  # what convert writes, validate accepts
    assert "pool lan: 1 range(s), IPv4: 51" in capsys.readouterr().out
    assert "note:" in err and "bgp" in err


def test_convert_refuses_garbage_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "junk.yaml"
    f.write_text("{{{ not yaml")
    assert cli.main(["convert", "--from", "kube-vip", str(f)]) == 1
    assert capsys.readouterr().err.startswith(f"{f}: ")


# --- no traceback, whatever the input ----------------------------------------------------


def test_validate_a_non_utf8_file_says_so_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "latin1.yaml"
    f.write_bytes(b"pools: [{name: caf\xe9, addresses: [198.51.100.1]}]\n")
    assert cli.main(["validate", str(f)]) == 1
    err = capsys.readouterr().err
    assert err == f"{f}: not UTF-8 text: byte 0xe9 at offset 18\n"


def test_validate_refuses_a_key_given_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "twice.yaml"
    f.write_text(GOOD + "pools: []\n")
    assert cli.main(["validate", str(f)]) == 1
    assert "line 2, column 1: duplicate key 'pools' (first at line 1)" in capsys.readouterr().err


def run_cli(argv: list[str], data: bytes, tmp_path: Path, via_stdin: bool) -> int:
    """``lbctl ARGV FILE`` on ``data``, from a file or standard input; the exit status.

    Any exception escapes and fails the test: that is what a user would see as a traceback.
    """
    if via_stdin:
        stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
        with mock.patch.object(sys, "stdin", stdin):
            return cli.main([*argv, "-"])
    f = tmp_path / "input.yaml"
    f.write_bytes(data)
    return cli.main([*argv, str(f)])


COMMANDS = [["validate"], ["convert", "--from", "metallb"], ["convert", "--from", "kube-vip"]]
inputs = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.randoms(use_true_random=False).map(lambda r: config_fuzz.mutated_text(r).encode()),
    st.sampled_from(config_fuzz.SAMPLES).flatmap(
        lambda text: st.integers(0, len(text)).flatmap(
            lambda cut: st.binary(max_size=8).map(
                lambda junk: text[:cut].encode() + junk + text[cut:].encode()
            )
        )
    ),
)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(argv=st.sampled_from(COMMANDS), data=inputs, via_stdin=st.booleans())
def test_no_command_prints_a_traceback_on_any_input(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    data: bytes,
    via_stdin: bool,
) -> None:
    assert run_cli(argv, data, tmp_path, via_stdin) in (0, 1, 2)
    err = capsys.readouterr().err
    assert "Traceback" not in err
