"""Node state and who announces, with real speakers (issue 14, item 2).

A node whose network is unavailable hands its addresses over and takes them back when the
condition clears; a NotReady node keeps announcing while its speaker is live (the choice
written down in docs/operations.md); ``lbctl status`` says why a node may not announce.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from kube_helpers import wait_for
from speaker_helpers import SpeakerLan

Build = Callable[..., SpeakerLan]


def set_condition(sl: SpeakerLan, host: str, kind: str, value: str) -> None:
    sl.core.patch_node_status(
        sl.node_name(host),
        {"status": {"conditions": [{"type": kind, "status": value, "reason": "Test"}]}},
    )


def status_text(sl: SpeakerLan) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "lbctl", "status", f"--kubeconfig={sl.kubeconfig}",
         f"--namespace={sl.namespace}"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return out.stdout


def test_a_node_whose_network_is_unavailable_hands_over_and_takes_back(
    speaker_lan: Build,
) -> None:
    sl = speaker_lan(3)
    sl.start_all()
    ip = sl.ip4(207)
    owner = sl.expected_owner(ip)
    sl.lb_service("web", [ip])
    assert wait_for("the owner's answer", lambda: sl.arp_replies(ip, 1)) == {sl.mac(owner)}

    set_condition(sl, owner, "NetworkUnavailable", "True")
    heir = sl.expected_owner(ip, [h for h in sl.nodes if h != owner])
    wait_for("the heir alone", lambda: sl.arp_replies(ip, 2) == {sl.mac(heir)}, timeout=15)
    text = status_text(sl)
    assert f"{sl.node_name(owner)}  no         condition NetworkUnavailable is True" in text
    assert f"web  {ip}" in text.replace(f"{sl.namespace}/", "") and sl.node_name(heir) in text

    set_condition(sl, owner, "NetworkUnavailable", "False")
    wait_for("the owner back alone", lambda: sl.arp_replies(ip, 2) == {sl.mac(owner)}, timeout=15)
    assert sl.check() == []


def test_a_not_ready_node_keeps_announcing_while_its_speaker_is_live(speaker_lan: Build) -> None:
    sl = speaker_lan(2)
    sl.start_all()
    ip = sl.ip4(208)
    owner = sl.expected_owner(ip)
    sl.lb_service("web", [ip])
    assert wait_for("the owner's answer", lambda: sl.arp_replies(ip, 1)) == {sl.mac(owner)}
    set_condition(sl, owner, "Ready", "Unknown")  # the kubelet went silent; the speaker did not
    wait_for(
        "status to see it Unknown",
        lambda: sl.core.read_node(sl.node_name(owner)).status.conditions[0].status == "Unknown",
    )
    assert sl.arp_replies(ip, 3) == {sl.mac(owner)}
    assert f"{sl.node_name(owner)}  yes" in status_text(sl)
