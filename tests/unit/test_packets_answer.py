"""Which requests the responder answers: an address we own, asked on a link we announce it on."""

from __future__ import annotations

import ipaddress

import pytest

from lbctl import packets

OURS = bytes.fromhex("02000000000a")
ASKER = bytes.fromhex("02000000000b")
ARP = packets.ArpRequest(
    ASKER, ipaddress.IPv4Address("198.51.100.1"), ipaddress.IPv4Address("198.51.100.200")
)
NS = packets.NeighborSolicitation(
    ASKER, ipaddress.IPv6Address("2001:db8::1"), ipaddress.IPv6Address("2001:db8::200")
)
FE80 = ipaddress.IPv6Address("fe80::a")


@pytest.mark.parametrize(
    ("says", "asked", "owned_on", "link", "expected"),
    [
        ("an address we announce on this link is answered", ARP, {2}, 2, "reply"),
        ("one announced on several links is answered on each", ARP, {2, 3}, 3, "reply"),
        ("an address we do not announce is not ours", ARP, None, 2, packets.Drop.NOT_OURS),
        (
            "an address we announce on another link only is the wrong interface",
            ARP,
            {3},
            2,
            packets.Drop.WRONG_INTERFACE,
        ),
        ("a Neighbor Solicitation is answered the same way", NS, {2}, 2, "reply"),
        ("and refused the same way", NS, None, 2, packets.Drop.NOT_OURS),
    ],
)
def test_answer(
    says: str,
    asked: packets.ArpRequest | packets.NeighborSolicitation,
    owned_on: set[int] | None,
    link: int,
    expected: str | packets.Drop,
) -> None:
    got = packets.answer(asked, owned_on=owned_on, link_index=link, mac=OURS, link_local=FE80)
    if expected == "reply":
        want = (
            packets.arp_reply(OURS, asked)
            if isinstance(asked, packets.ArpRequest)
            else packets.na_reply(OURS, asked, FE80)
        )
        assert got == want, says
    else:
        assert got is expected, says
