"""Which device named like a network's tunnel the linux driver takes as its own."""

from __future__ import annotations

import ipaddress

import pytest

from services.vppagent.drivers.linux.netlink.records import Link, VxlanInfo
from services.vppagent.drivers.linux.plan import VxlanObj
from services.vppagent.drivers.linux.tunnels import tunnel_problem

VTEP = ipaddress.ip_address("10.250.0.1")
WANTED = VxlanObj("mnvx1234", 1234, "02:00:00:00:00:01", 1450)


def link(kind: str = "vxlan", vni: int = 1234, local: str = "10.250.0.1", alias: str = "", mtu: int = 1450) -> Link:
    info = VxlanInfo(vni, ipaddress.ip_address(local)) if kind == "vxlan" else None
    return Link(7, "mnvx1234", kind, alias, "02:00:00:00:00:01", mtu, True, 0, info)


@pytest.mark.parametrize(
    "found",
    [
        link(alias="multinet:vxlan/1234"),
        link(),  # created, then the agent stopped before marking it
        link(alias="multinet:vxlan/1234", mtu=9000),  # the MTU is repaired in place, not a reason to refuse
    ],
)
def test_ours(found: Link) -> None:
    assert tunnel_problem(found, WANTED, VTEP) == ""


@pytest.mark.parametrize(
    ("found", "words"),
    [
        (link(kind="dummy"), "is a dummy"),
        (link(vni=99), "vni 99"),
        (link(local="10.250.0.9"), "local 10.250.0.9"),  # made for another VTEP address
        (link(alias="someone else's"), 'alias "someone else\'s"'),
        (None, "missing"),
    ],
)
def test_not_ours(found: Link | None, words: str) -> None:
    problem = tunnel_problem(found, WANTED, VTEP)
    assert words in problem
    if found is not None:
        assert "not the tunnel for VNI 1234 from 10.250.0.1" in problem
