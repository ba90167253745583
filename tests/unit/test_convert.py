"""lbctl convert, whatever the source: clear errors, applyable output with the notes as
comments, no crash on any text, and the real-world files under tests/data/convert."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from convert_helpers import check_result, kube_vip_configmap
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lbctl import convert

METALLB_INNER = "address-pools: [{name: lan, protocol: layer2, addresses: [10.0.0.0/28]}]\n"


@pytest.mark.parametrize(
    ("source", "text", "message"),
    [
        ("cilium", METALLB_INNER, "unknown source 'cilium': expected one of metallb, kube-vip"),
        ("metallb", "", "the input is empty"),
        ("metallb", "address-pools: [", "the input is not valid YAML at line 1"),
        ("metallb", "when: 2020-13-45\n", "not valid YAML"),
        ("kube-vip", "\t- !!python/object:os.system x", "not valid YAML"),
        ("kube-vip", kube_vip_configmap({"allow-share-a": "true"}), "nothing to convert"),
    ],
)
def test_bad_input_is_one_clear_convert_error(source: str, text: str, message: str) -> None:
    with pytest.raises(convert.ConvertError) as caught:
        convert.convert(source, text)
    assert message in str(caught.value)


def test_convert_error_is_a_value_error_with_its_problems() -> None:
    err = convert.ConvertError(["a", "b"])
    assert isinstance(err, ValueError)
    assert (err.lines, str(err)) == (["a", "b"], "a; b")


# --- rendering ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ("metallb", "address-pools: [{name: 'A\\nB', protocol: layer2, addresses: [10.0.0.0/28]}]"),
        ("kube-vip", 'cidr-global: 10.1.0.0/28\n"odd\\u2028key\\nhere": x\n'),
    ],
)
def test_render_is_applyable_yaml_with_the_notes_as_comments(source: str, text: str) -> None:
    conv = convert.convert(source, text)
    out = convert.render(conv)
    assert yaml.safe_load(out) == conv.config_map
    head = out.split("apiVersion:", 1)[0].splitlines()
    assert head and all(line.startswith("#") for line in head)
    assert len(head) == 2 + len(conv.notes)
    assert "config.yaml: |" in out  # the embedded config stays readable


# --- notes never contradict the output -----------------------------------------------------


@pytest.mark.parametrize(
    ("source", "text", "not_in_notes"),
    [
        pytest.param(
            "kube-vip",
            kube_vip_configmap({"cidr-default": "192.0.2.200/29", "cidr-global": "192.0.2.200/29"}),
            "priority",
            id="no priority note about a global pool the output does not hold",
        ),
        pytest.param(
            "kube-vip",
            kube_vip_configmap({"cidr-global": "10.1.0.0/28", "cidr-a": "10.2.0.0/28"}),
            "may get an address from the global pool",
            id="no fallback note: a namespace with its own pool never gets a global address",
        ),
    ],
)
def test_notes_never_contradict_the_output(source: str, text: str, not_in_notes: str) -> None:
    conv = convert.convert(source, text)
    assert not any(not_in_notes in n for n in conv.notes), conv.notes


def test_no_note_about_buggy_ips_when_no_pool_is_left() -> None:
    with pytest.raises(convert.ConvertError) as caught:
        convert.convert("kube-vip", kube_vip_configmap({"cidr-global": "127.0.0.0/28"}))
    assert "avoidBuggyIPs" not in str(caught.value)
    assert "cidr-global: entry left out: '127.0.0.0/28' is a loopback range" in str(caught.value)


# --- properties --------------------------------------------------------------------------


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(source=st.sampled_from(convert.SOURCES), text=st.text())
def test_random_text_yields_a_conversion_or_a_convert_error(source: str, text: str) -> None:
    try:
        conv = convert.convert(source, text)
    except convert.ConvertError:
        return
    check_result(conv)


kube_vip_keys = st.sampled_from(
    [
        "cidr-global",
        "range-global",
        "cidr-a",
        "range-a",
        "cidr-b",
        "allow-share-a",
        "skip-end-ips-in-cidr",
        "search-order",
        "interface-global",
        "interface-a",
        "x",
    ]
)
octet = st.integers(0, 255)
entry = st.one_of(
    st.tuples(octet, st.sampled_from([24, 28, 30, 32])).map(lambda t: f"10.0.0.{t[0]}/{t[1]}"),
    st.tuples(octet, octet).map(lambda t: f"10.0.0.{t[0]}-10.0.0.{t[1]}"),
    octet.map(lambda o: f"10.0.0.{o}"),
)
kube_vip_values = st.one_of(
    st.lists(entry, min_size=1, max_size=3).map(",".join),
    st.sampled_from(["true", "desc", "eth0", "0.0.0.0/32", "2001:db8::/64", "", "a/b"]),
    st.text(max_size=10),
)


@settings(max_examples=200)
@given(data=st.dictionaries(kube_vip_keys, kube_vip_values, max_size=8))
def test_kube_vip_maps_yield_a_valid_config_or_a_convert_error(data: dict[str, str]) -> None:
    try:
        conv = convert.convert("kube-vip", kube_vip_configmap(data))
    except convert.ConvertError:
        return
    check_result(conv)


# --- real-world files: the shapes users publish --------------------------------------------

DATA = Path(__file__).parents[1] / "data" / "convert"
EXPECTED = yaml.safe_load((DATA / "expected.yaml").read_text())


def test_every_real_world_file_has_an_expectation() -> None:
    files = {f.name for f in DATA.glob("*.yaml")} - {"expected.yaml"}
    assert files == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_world_files(name: str) -> None:
    """Each file converts (or is refused) as tests/data/convert/expected.yaml says."""
    want = EXPECTED[name]
    text = (DATA / name).read_text()
    if "error" in want:
        with pytest.raises(convert.ConvertError) as caught:
            convert.convert(want["source"], text)
        assert want["error"] in str(caught.value)
        return
    conv = convert.convert(want["source"], text)
    check_result(conv)
    got = yaml.safe_load(conv.config_map["data"]["config.yaml"])
    assert got == want["config"]
    for fragment in want.get("notes", []):
        assert any(fragment in n for n in conv.notes), (fragment, conv.notes)
    assert len(conv.notes) == len(want.get("notes", [])), conv.notes
    # and through the command, as a user runs it: notes on stderr, the manifest on stdout
    assert convert.render(conv).count("#   - ") == len(conv.notes)
