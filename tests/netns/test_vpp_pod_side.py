"""The vpp driver's pod side (NetlinkPodSide) against the real kernel: the fake VPP of tests/fixtures/vpp_fake.py stands
for VPP, and what tap_create_v3 does in the pod's netns is done with ip(8) in a real one. The rest of the vpp driver
runs against the fake alone, without root, in tests/unit/vppagent/test_vpp_driver_fake_vpp.py."""

from __future__ import annotations

import ipaddress
import json
import os

import pytest

from services.vppagent.drivers.vpp import VppDriver
from services.vppagent.errors import InterfaceExists
from services.vppagent.model import NetworkSpec, PortRoute, PortSpec
from tests.fixtures.netns import Namespaces, sh
from tests.fixtures.vpp_fake import FakeInterface, FakeVpp

pytestmark = pytest.mark.netns
BLUE = NetworkSpec("blue", 100, 1400, (ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("fd00:1::/64")))
RED = NetworkSpec("red", 200, 1400, (ipaddress.ip_network("10.1.0.0/16"),))
ROUTES = (PortRoute(ipaddress.ip_network("0.0.0.0/0")), PortRoute(ipaddress.ip_network("::/0")))


def _realize_tap(iface: FakeInterface) -> None:
    """What tap.c does with netlink for tap_create_v3, done with ip(8) in the pod's netns."""
    tap, ns = iface.tap, os.path.basename(iface.tap["host_namespace"])
    name = tap["host_if_name"]
    sh(f"ip -n {ns} tuntap add dev {name} mode tap")
    sh(f"ip -n {ns} link set dev {name} address {tap['host_mac']} mtu {tap['host_mtu']}")
    if tap["host_ip4"] is not None:
        sh(f"ip -n {ns} addr add {tap['host_ip4']} dev {name}")
    sh(f"ip -n {ns} link set dev {name} up")


def _unrealize_tap(iface: FakeInterface) -> None:
    sh(f"ip -n {os.path.basename(iface.tap['host_namespace'])} link del {iface.tap['host_if_name']}", check=False)


def test_the_pod_side_is_programmed_through_the_linux_netlink_pieces(netns: Namespaces) -> None:
    ns = netns.new("vpod")
    vpp = FakeVpp()
    vpp.on_tap_create, vpp.on_tap_delete = _realize_tap, _unrealize_tap
    driver = VppDriver(lambda: vpp)  # the real NetlinkPodSide
    ips = (ipaddress.ip_interface("10.1.0.5/32"), ipaddress.ip_interface("fd00:1::5/128"))
    p = PortSpec("blue", "c-netns", "eth1", netns.path(ns), ips, ROUTES, BLUE.mtu)

    result = driver.attach(p, BLUE)
    assert result.mac == p.pod_mac
    link = json.loads(sh(f"ip -n {ns} -j addr show dev eth1").stdout)[0]
    assert link["address"] == p.pod_mac and link["mtu"] == BLUE.mtu
    addrs = {(a["local"], a["prefixlen"], "tentative" in a) for a in link["addr_info"] if a["scope"] == "global"}
    assert addrs == {("10.1.0.5", 32, False), ("fd00:1::5", 128, False)}  # IPv6 added NODAD by the pod side
    routes = json.loads(sh(f"ip -n {ns} -j route").stdout) + json.loads(sh(f"ip -n {ns} -j -6 route").stdout)
    defaults = {(r["gateway"], r["dev"], "onlink" in r.get("flags", [])) for r in routes if r["dst"] == "default"}
    assert defaults == {("169.254.1.1", "eth1", True), ("fe80::1", "eth1", False)}
    for gw in ("169.254.1.1", "fe80::1"):
        assert "lladdr ee:ee:ee:ee:ee:ee PERMANENT" in sh(f"ip -n {ns} neigh show {gw} dev eth1").stdout
    assert driver.check(p, BLUE) == []
    assert driver.attach(p, BLUE) == result
    assert driver.check(p, BLUE) == []

    taken = PortSpec("red", "c-other", "eth1", netns.path(ns), ips, ROUTES, RED.mtu)
    with pytest.raises(InterfaceExists):
        driver.attach(taken, RED)

    assert driver.detach(p) is True
    assert "eth1" not in sh(f"ip -n {ns} link").stdout
    problems = driver.check(p, BLUE)
    assert any("VPP has no tap" in x for x in problems) and any("does not exist" in x for x in problems)
