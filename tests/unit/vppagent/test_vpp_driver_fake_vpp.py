"""The vpp driver against a fake VPP (no VPP binary exists here): see vpp_fake.py for what the fake checks.

What is proven: the calls the driver makes, their field names and types per VPP's .api definitions (through
vpp_papi's own serializer), and the driver's convergence logic against a state model of the VPP handlers it relies
on. What is not: VPP's forwarding. Nothing here ever ran against a VPP process. The pod side is a fake here too:
the real one (netlink in a pod netns, needing root) is tested in tests/netns/test_vpp_pod_side.py."""

from __future__ import annotations

import ipaddress
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.vppagent.drivers.vpp import VppDriver, actual, calls, diff, plan
from services.vppagent.drivers.vpp.api import VppApiError
from services.vppagent.errors import InterfaceExists, InvalidSpec, NetnsNotFound
from services.vppagent.model import (
    TABLE_BASE,
    DesiredNode,
    NetworkSpec,
    PeerNode,
    PortRoute,
    PortSpec,
    RemoteEndpoint,
    table_for_vni,
)
from tests.fixtures.vpp_fake import ApiMisuse, FakePodSide, FakeVpp

BLUE = NetworkSpec("blue", 100, 1400, (ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("fd00:1::/64")))
RED = NetworkSpec("red", 200, 1400, (ipaddress.ip_network("10.1.0.0/16"),))  # the same IPv4 range as blue
NODE_A = ipaddress.ip_address("192.0.2.1")
NODE_B = PeerNode("node-b", ipaddress.ip_address("192.0.2.2"))
NODE_C = PeerNode("node-c", ipaddress.ip_address("192.0.2.3"))
ROUTES = (PortRoute(ipaddress.ip_network("0.0.0.0/0")), PortRoute(ipaddress.ip_network("::/0")))
V4, V6 = False, True


@pytest.fixture
def netns_dir() -> Iterator[Path]:
    """Stand-ins for pod netns paths: the driver checks they exist; VPP takes at most 63 bytes of path."""
    path = Path(tempfile.mkdtemp(prefix="mnv"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture
def vpp() -> FakeVpp:
    return FakeVpp()


def make_driver(vpp: FakeVpp, **kw: object) -> VppDriver:
    return VppDriver(lambda: vpp, pod_side=FakePodSide(vpp), **kw)  # type: ignore[arg-type]


def port(netns_dir: Path, net: NetworkSpec, pod: str, *ips: str) -> PortSpec:
    ns = netns_dir / pod
    ns.touch()
    addrs = tuple(ipaddress.ip_interface(f"{ip}/{32 if ':' not in ip else 128}") for ip in ips)
    return PortSpec(net.name, f"container-{pod}-" + "f" * 40, "eth1", str(ns), addrs, ROUTES, net.mtu)


def tap_of(vpp: FakeVpp, p: PortSpec) -> int:
    iface = vpp.by_tag(plan.port_tag(p))
    assert iface is not None, f"no tap for {p.container_id}"
    return iface.sw_if_index


def loop_of(vpp: FakeVpp, net: NetworkSpec) -> int:
    iface = vpp.by_tag(plan.network_tag(net.vni))
    assert iface is not None
    return iface.sw_if_index


def via(vpp: FakeVpp, net: NetworkSpec, prefix: str) -> tuple[int, int, object] | None:
    """(path type, sw_if_index, next hop) of the API route to `prefix` in the network's VRF."""
    pfx = ipaddress.ip_network(prefix)
    paths = vpp.api_routes(net.table, pfx.version == 6).get(pfx)
    if not paths:
        return None
    (path,) = paths
    arm = "ip4" if pfx.version == 4 else "ip6"
    return path["type"], path["sw_if_index"], path["nh"]["address"][arm]


def desired(
    *ports: PortSpec, remotes: tuple[RemoteEndpoint, ...] = (), peers: tuple[PeerNode, ...] = ()
) -> DesiredNode:
    nets = {n.name: n for n in (BLUE, RED)}
    return DesiredNode(
        node="node-a",
        underlay=NODE_A,
        networks={p.network: nets[p.network] for p in ports} | {r.network: nets[r.network] for r in remotes},
        ports={p.key: p for p in ports},
        remotes={(r.network, r.address): r for r in remotes},
        peers={p.name: p for p in peers},
    )


# ------------------------------------------------------------------------------------------------ (a) isolation
def test_two_networks_with_the_same_range_get_separate_vrfs_and_routes(vpp: FakeVpp, netns_dir: Path) -> None:
    driver = make_driver(vpp)
    blue = port(netns_dir, BLUE, "b1", "10.1.0.5", "fd00:1::5")
    red = port(netns_dir, RED, "r1", "10.1.0.5")
    driver.attach(blue, BLUE)
    driver.attach(red, RED)

    for net in (BLUE, RED):
        assert net.table == table_for_vni(net.vni)
        assert (net.table, V4) in vpp.tables and (net.table, V6) in vpp.tables
        drop = calls.FIB_API_PATH_TYPE_DROP
        assert vpp.api_routes(net.table, V4)[ipaddress.ip_network("0.0.0.0/0")][0]["type"] == drop
        assert vpp.api_routes(net.table, V6)[ipaddress.ip_network("::/0")][0]["type"] == drop
        loop = vpp.interfaces[loop_of(vpp, net)]
        assert loop.table == {V4: net.table, V6: net.table}
        assert loop.addresses == [ipaddress.ip_interface("169.254.1.1/32")]  # same address, different VRFs: fine
    b_tap, r_tap = vpp.interfaces[tap_of(vpp, blue)], vpp.interfaces[tap_of(vpp, red)]
    assert b_tap.table == {V4: BLUE.table, V6: BLUE.table}
    assert r_tap.table == {V4: RED.table, V6: RED.table}
    assert b_tap.unnumbered_to == loop_of(vpp, BLUE) and r_tap.unnumbered_to == loop_of(vpp, RED)
    assert b_tap.up and r_tap.up
    addr = ipaddress.ip_address("10.1.0.5")
    assert via(vpp, BLUE, "10.1.0.5/32") == (0, b_tap.sw_if_index, addr)
    assert via(vpp, RED, "10.1.0.5/32") == (0, r_tap.sw_if_index, addr)
    assert via(vpp, BLUE, "fd00:1::5/128") == (0, b_tap.sw_if_index, ipaddress.ip_address("fd00:1::5"))
    assert via(vpp, RED, "fd00:1::5/128") is None
    # Static neighbours without a FIB entry of their own: the host route above is the only one.
    assert vpp.neighbours[(b_tap.sw_if_index, addr)] == (blue.pod_mac, 0x3)
    assert vpp.neighbours[(r_tap.sw_if_index, addr)] == (red.pod_mac, 0x3)
    # What tap_create_v3 was asked for.
    assert b_tap.tap["host_namespace"] == blue.netns and b_tap.tap["host_if_name"] == "eth1"
    assert b_tap.tap["host_mac"] == blue.pod_mac and b_tap.tap["host_mtu"] == blue.mtu
    assert b_tap.tap["host_ip4"] == ipaddress.ip_interface("10.1.0.5/32") and b_tap.tap["host_ip6"] is None
    assert b_tap.mac == "ee:ee:ee:ee:ee:ee" and b_tap.tap["tap_flags"] == 0
    assert b_tap.tag == "multinet:port/" + blue.host_ifname
    # No route of either network leaks into the other's VRF, nor into VPP's default table.
    assert not vpp.api_routes(0, V4) and not vpp.api_routes(0, V6)


# ------------------------------------------------------------------------------------------------ (b) idempotence
def test_attach_is_idempotent(vpp: FakeVpp, netns_dir: Path) -> None:
    driver = make_driver(vpp)
    p = port(netns_dir, BLUE, "b1", "10.1.0.5", "fd00:1::5")
    first = driver.attach(p, BLUE)
    before, n_calls = vpp.state(), len(vpp.calls)
    second = driver.attach(p, BLUE)
    assert second == first and first.mac == p.pod_mac and first.mtu == p.mtu and first.host_ifname == "tap0"
    assert vpp.state() == before
    again = [msg for msg, _ in vpp.calls[n_calls:] if msg not in {"ip_neighbor_add_del", "ip_route_add_del"}]
    creating = {"tap_create_v3", "create_loopback", "ip_table_add_del", "sw_interface_set_table"}
    assert not creating & set(again), again
    assert driver.check(p, BLUE) == []


def test_attach_refuses_a_taken_name_a_missing_netns_and_a_path_vpp_cannot_take(vpp: FakeVpp, netns_dir: Path) -> None:
    driver = make_driver(vpp)
    p = port(netns_dir, BLUE, "b1", "10.1.0.5")
    vpp.kernel_links.add((p.netns, p.ifname))
    with pytest.raises(InterfaceExists):
        driver.attach(p, BLUE)
    assert vpp.by_tag(plan.port_tag(p)) is None
    gone = PortSpec(BLUE.name, "c2", "eth1", str(netns_dir / "gone"), p.ips, (), 1400)
    with pytest.raises(NetnsNotFound):
        driver.attach(gone, BLUE)
    long_path = PortSpec(BLUE.name, "c3", "eth1", "/var/run/netns/" + "x" * 60, p.ips, (), 1400)
    with pytest.raises(InvalidSpec):
        driver.attach(long_path, BLUE)


def test_detach_removes_the_tap_and_only_its_own_routes(vpp: FakeVpp, netns_dir: Path) -> None:
    driver = make_driver(vpp)
    old = port(netns_dir, BLUE, "old", "10.1.0.5")
    driver.attach(old, BLUE)
    # The address moved to a newer pod before the old one was detached: its route must survive.
    new = port(netns_dir, BLUE, "new", "10.1.0.5")
    driver.attach(new, BLUE)
    assert driver.detach(old) is True
    assert vpp.by_tag(plan.port_tag(old)) is None
    assert via(vpp, BLUE, "10.1.0.5/32") == (0, tap_of(vpp, new), ipaddress.ip_address("10.1.0.5"))
    assert driver.detach(old) is False
    assert driver.detach(new) is True
    assert via(vpp, BLUE, "10.1.0.5/32") is None


# ------------------------------------------------------------------------------------------------ (c) restart
def full_state(netns_dir: Path) -> tuple[DesiredNode, PortSpec, PortSpec, PortSpec]:
    b1 = port(netns_dir, BLUE, "b1", "10.1.0.5", "fd00:1::5")
    b2 = port(netns_dir, BLUE, "b2", "10.1.0.6", "fd00:1::6")
    r1 = port(netns_dir, RED, "r1", "10.1.0.5")
    remotes = (
        RemoteEndpoint("blue", ipaddress.ip_address("10.1.0.9"), "node-b"),
        RemoteEndpoint("blue", ipaddress.ip_address("fd00:1::9"), "node-b"),
        RemoteEndpoint("red", ipaddress.ip_address("10.1.0.9"), "node-c"),
    )
    return desired(b1, b2, r1, remotes=remotes, peers=(NODE_B, NODE_C)), b1, b2, r1


def test_reconcile_after_an_agent_restart_changes_nothing(vpp: FakeVpp, netns_dir: Path) -> None:
    want, *_ = full_state(netns_dir)
    first = make_driver(vpp).reconcile(want)
    assert first.problems == [] and first.ports_recreated == 3 and first.changed > 0
    before, n_mutations = vpp.state(), len(vpp.mutations)

    restarted = make_driver(vpp)  # a new agent process: nothing in memory, the same VPP
    report = restarted.reconcile(want)
    assert report.changed == 0 and report.problems == [], report
    assert vpp.mutations[n_mutations:] == []
    assert vpp.state() == before
    assert restarted.reconcile(want).changed == 0


def test_reconcile_removes_what_is_no_longer_desired(vpp: FakeVpp, netns_dir: Path) -> None:
    want, b1, b2, r1 = full_state(netns_dir)
    make_driver(vpp).reconcile(want)
    b2_tap, red_loop = tap_of(vpp, b2), loop_of(vpp, RED)

    smaller = desired(
        b1, remotes=(RemoteEndpoint("blue", ipaddress.ip_address("10.1.0.9"), "node-b"),), peers=(NODE_B,)
    )
    restarted = make_driver(vpp)
    report = restarted.reconcile(smaller)
    assert report.problems == [] and report.ports_removed == 2

    assert b2_tap not in vpp.interfaces and red_loop not in vpp.interfaces
    assert vpp.by_tag(plan.port_tag(r1)) is None
    assert (RED.table, V4) not in vpp.tables and (RED.table, V6) not in vpp.tables
    assert set(vpp.api_routes(BLUE.table, V4)) == {
        ipaddress.ip_network(p) for p in ("0.0.0.0/0", "10.1.0.5/32", "10.1.0.9/32")
    }
    assert set(vpp.api_routes(BLUE.table, V6)) == {ipaddress.ip_network(p) for p in ("::/0", "fd00:1::5/128")}
    tunnels = [i for i in vpp.interfaces.values() if i.tunnel]
    left = {(t.tunnel["dst"], t.tunnel["vni"], t.tunnel["src_port"]) for t in tunnels}
    assert left == {(NODE_B.underlay, 100, 4789), (NODE_B.underlay, 100, 8472)}  # blue is dual stack
    # No route is left pointing at an index VPP could hand to the next interface.
    for table in vpp.routes.values():
        for route in table.values():
            for path in route.sources.get("api", []):
                assert path["sw_if_index"] in vpp.interfaces or path["sw_if_index"] == calls.INVALID_INDEX
    assert restarted.reconcile(smaller).changed == 0


def test_reconcile_repairs_drift_and_recreates_lost_ports(vpp: FakeVpp, netns_dir: Path) -> None:
    want, b1, b2, _ = full_state(netns_dir)
    driver = make_driver(vpp)
    driver.reconcile(want)
    # Someone removed a route and a neighbour, took a tap down, and deleted another tap.
    vpp.routes[(BLUE.table, V4)][ipaddress.ip_network("10.1.0.9/32")].sources.pop("api")
    del vpp.neighbours[(tap_of(vpp, b1), ipaddress.ip_address("fd00:1::5"))]
    vpp.interfaces[tap_of(vpp, b1)].up = False
    gone = vpp.interfaces[tap_of(vpp, b2)]
    vpp.call("tap_delete_v2", {"sw_if_index": gone.sw_if_index})

    report = make_driver(vpp).reconcile(want)
    assert report.problems == [] and report.ports_recreated == 1 and report.added >= 3
    assert vpp.interfaces[tap_of(vpp, b1)].up
    assert via(vpp, BLUE, "10.1.0.9/32") is not None
    assert (tap_of(vpp, b1), ipaddress.ip_address("fd00:1::5")) in vpp.neighbours
    assert via(vpp, BLUE, "10.1.0.6/32") == (0, tap_of(vpp, b2), ipaddress.ip_address("10.1.0.6"))
    assert driver.reconcile(want).changed == 0


def test_a_loopback_in_the_wrong_table_is_rebuilt_and_its_borrowers_follow(vpp: FakeVpp, netns_dir: Path) -> None:
    want, *_ = full_state(netns_dir)
    driver = make_driver(vpp)
    driver.reconcile(want)
    old = loop_of(vpp, BLUE)
    vpp.interfaces[old].table = {V4: 0, V6: 0}  # drift VPP itself would refuse through the API
    report = make_driver(vpp).reconcile(want)
    assert report.problems == []
    new = loop_of(vpp, BLUE)
    assert new != old and old not in vpp.interfaces
    borrowers = [i for i in vpp.interfaces.values() if i.table[V4] == BLUE.table and i.sw_if_index != new]
    assert len(borrowers) == 2 + 4  # b1, b2 and blue's four tunnels
    assert all(i.unnumbered_to == new for i in borrowers)
    assert driver.reconcile(want).changed == 0


def test_after_a_vpp_restart_the_driver_reconnects_and_rebuilds_everything(netns_dir: Path) -> None:
    vpps = [FakeVpp(), FakeVpp()]  # the second stands for the restarted VPP: empty
    connections = iter(vpps)
    driver = VppDriver(lambda: next(connections), pod_side=FakePodSide(vpps[1]))
    want, *_ = full_state(netns_dir)
    driver.prepare()
    vpps[0].broken = True  # the API socket died with the old VPP
    report = driver.reconcile(want)
    assert vpps[0].closed and report.problems == [] and report.ports_recreated == 3
    assert make_driver(vpps[1]).reconcile(want).changed == 0


def test_reconcile_reports_a_port_whose_netns_is_gone(vpp: FakeVpp, netns_dir: Path) -> None:
    b1 = port(netns_dir, BLUE, "b1", "10.1.0.5")
    Path(b1.netns).unlink()
    report = make_driver(vpp).reconcile(desired(b1))
    assert report.ports_recreated == 0 and any("is gone" in p for p in report.problems)


# ------------------------------------------------------------------------------------------------ (d) tunnels
def test_remote_endpoints_get_routes_through_their_nodes_tunnel(vpp: FakeVpp, netns_dir: Path) -> None:
    want, *_ = full_state(netns_dir)
    driver = make_driver(vpp)
    assert driver.reconcile(want).problems == []

    tunnels = {(i.tunnel["dst"], i.tunnel["vni"], i.tunnel["src_port"]): i for i in vpp.interfaces.values() if i.tunnel}
    # blue is dual stack: an IPv4-inner and an IPv6-inner tunnel to each peer; red is IPv4 only.
    assert set(tunnels) == {
        (NODE_B.underlay, 100, 4789),
        (NODE_B.underlay, 100, 8472),
        (NODE_C.underlay, 100, 4789),
        (NODE_C.underlay, 100, 8472),
        (NODE_B.underlay, 200, 4789),
        (NODE_C.underlay, 200, 4789),
    }
    arcs = vpp.node_next["vxlan4-input"]
    for (_, vni, udp), iface in tunnels.items():
        t = iface.tunnel
        net = BLUE if vni == 100 else RED
        assert t["src"] == NODE_A and t["is_l3"] and t["dst_port"] == udp and t["encap_vrf_id"] == 0
        assert arcs[t["decap_next_index"]] == ("ip4-input" if udp == 4789 else "ip6-input")
        assert iface.table == {V4: net.table, V6: net.table} and iface.unnumbered_to == loop_of(vpp, net)
        assert iface.up and iface.tag.startswith("multinet:vx/")
    assert via(vpp, BLUE, "10.1.0.9/32") == (
        0,
        tunnels[(NODE_B.underlay, 100, 4789)].sw_if_index,
        plan.TUNNEL_NEXTHOP[4],
    )
    assert via(vpp, BLUE, "fd00:1::9/128") == (
        0,
        tunnels[(NODE_B.underlay, 100, 8472)].sw_if_index,
        plan.TUNNEL_NEXTHOP[6],
    )
    # The same address on red lives on another node, through red's own tunnel.
    assert via(vpp, RED, "10.1.0.9/32") == (
        0,
        tunnels[(NODE_C.underlay, 200, 4789)].sw_if_index,
        plan.TUNNEL_NEXTHOP[4],
    )

    # The red endpoint moves to node-b: its route follows, nothing else changes.
    moved = desired(
        *want.ports.values(),
        remotes=(
            *[r for r in want.remotes.values() if r.network == "blue"],
            RemoteEndpoint("red", ipaddress.ip_address("10.1.0.9"), "node-b"),
        ),
        peers=(NODE_B, NODE_C),
    )
    report = driver.reconcile(moved)
    assert (report.added, report.removed) == (1, 0)  # one route replaced in place
    assert via(vpp, RED, "10.1.0.9/32") == (
        0,
        tunnels[(NODE_B.underlay, 200, 4789)].sw_if_index,
        plan.TUNNEL_NEXTHOP[4],
    )


def test_a_tunnel_created_but_not_tagged_before_a_crash_is_adopted(vpp: FakeVpp, netns_dir: Path) -> None:
    want, *_ = full_state(netns_dir)
    driver = make_driver(vpp)
    driver.reconcile(want)
    tun = next(i for i in vpp.interfaces.values() if i.tunnel)
    sw, tag = tun.sw_if_index, tun.tag
    vpp.call("sw_interface_tag_add_del", {"is_add": False, "sw_if_index": sw, "tag": ""})
    report = make_driver(vpp).reconcile(want)
    assert report.problems == []
    assert vpp.interfaces[sw].tag == tag  # the same tunnel, tagged again: VPP refused a duplicate (TUNNEL_EXIST)
    assert make_driver(vpp).reconcile(want).changed == 0


def test_peers_with_another_underlay_family_are_reported_not_tunnelled(vpp: FakeVpp, netns_dir: Path) -> None:
    v6_peer = PeerNode("node-d", ipaddress.ip_address("2001:db8::4"))
    b1 = port(netns_dir, BLUE, "b1", "10.1.0.5")
    report = make_driver(vpp).reconcile(desired(b1, peers=(v6_peer,)))
    assert any("node-d" in p for p in report.problems)
    assert not [i for i in vpp.interfaces.values() if i.tunnel]


# ------------------------------------------------------------------------------------------------ (e) the API itself
def test_every_message_the_driver_sends_is_checked_against_the_api_table(vpp: FakeVpp, netns_dir: Path) -> None:
    want, *_ = full_state(netns_dir)
    driver = make_driver(vpp)
    driver.reconcile(want)
    driver.check(next(iter(want.ports.values())), BLUE)
    driver.detach(next(iter(want.ports.values())))
    sent = {msg for msg, _ in vpp.calls}
    assert sent >= {
        "tap_create_v3", "sw_interface_set_table", "sw_interface_set_unnumbered", "sw_interface_set_flags",
        "sw_interface_add_del_address", "create_loopback", "sw_interface_tag_add_del", "ip_table_add_del",
        "ip_route_add_del", "ip_neighbor_add_del", "vxlan_add_del_tunnel_v3", "add_node_next", "tap_delete_v2",
        "sw_interface_dump", "ip_table_dump", "ip_route_dump", "ip_route_lookup", "vxlan_tunnel_v2_dump",
        "ip_neighbor_dump", "ip_unnumbered_dump", "ip_address_dump", "sw_interface_get_table",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("msg", "fields", "complaint"),
    [
        ("sw_interface_set_table", {"sw_if_idx": 1, "is_ipv6": False, "vrf_id": 7}, "no field"),
        (
            "sw_interface_set_table",
            {"sw_if_index": 1, "is_ip6": False, "vrf_id": 7},
            "no field",
        ),  # ip_table says is_ip6
        ("sw_interface_set_flags", {"sw_if_index": 1, "flags": 4}, "bits outside"),
        ("sw_interface_set_unnumbered", {"sw_if_index": 1, "unnumbered_sw_if_index": 2, "is_add": 1}, "bool expected"),
        ("sw_interface_tag_add_del", {"is_add": True, "sw_if_index": 1, "tag": "x" * 64}, "do not fit"),
        ("ip_table_add_del", {"is_add": True, "table": {"table_id": 1, "is_ipv6": False}}, "no field"),
        ("ip_neighbor_add_del", {"is_add": True, "neighbor": {"ip_address": "10.0.0.1"}}, "expects"),
        ("tap_create_v3", {"host_mac_addr": "EE-EE-EE-EE-EE-EE"}, "MAC address"),
        ("vxlan_add_del_tunnel_v3", {"vni": -1}, "out of range"),
        ("vxlan_add_del_tunnel_v3_reply", {}, "not a request"),
    ],
)
def test_the_fake_rejects_what_the_api_does_not_define(
    vpp: FakeVpp, msg: str, fields: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ApiMisuse, match=complaint):
        vpp.call(msg, fields)


def test_the_fake_packs_with_vpp_papi(vpp: FakeVpp) -> None:
    # A fib_path without its fixed 16-label stack does not pack in vpp_papi: the fake runs papi's serializer.
    path = {"sw_if_index": 1, "type": 0, "proto": 0, "nh": {"address": {"ip4": ipaddress.ip_address("10.0.0.1")}}}
    route = {"table_id": 0, "prefix": ipaddress.ip_network("10.9.0.0/24"), "n_paths": 1, "paths": [path]}
    with pytest.raises(Exception) as caught:  # papi raises its own error, wrapped once per nesting level
        vpp.call("ip_route_add_del", {"is_add": True, "is_multipath": False, "route": route})
    chain: list[BaseException] = []
    error: BaseException | None = caught.value
    while error is not None:
        chain.append(error)
        error = error.__cause__
    assert any("label_stack" in str(e) for e in chain), chain


def test_tap_gateways_are_left_to_the_pod_side_because_the_kernel_refuses_vpps_route(
    vpp: FakeVpp, netns_dir: Path
) -> None:
    p = port(netns_dir, BLUE, "b1", "10.1.0.5")
    fields = dict(calls.tap_create(plan.Tap(plan.port_tag(p), BLUE.table, "", p)).fields)
    assert fields["host_ip4_gw_set"] is False and fields["host_ip6_gw_set"] is False
    fields |= {"host_ip4_gw_set": True, "host_ip4_gw": ipaddress.ip_address("169.254.1.1")}
    assert vpp.call("tap_create_v3", fields).retval == calls.RV_NETLINK_ERROR


def test_vpp_refusals_surface_as_dataplane_errors(vpp: FakeVpp, netns_dir: Path) -> None:
    driver = make_driver(vpp)
    vpp.node_next.pop("vxlan4-input")  # the vxlan plugin is not loaded
    want, *_ = full_state(netns_dir)
    report = driver.reconcile(want)
    assert any("add_node_next returned -63" in p for p in report.problems)
    assert report.ports_recreated == 3  # the rest converged anyway
    with pytest.raises(VppApiError):
        actual.interface_table(vpp, 4242, is_ip6=False)


def test_tunnel_mtu_reads_the_uplink_from_vpp(vpp: FakeVpp) -> None:
    assert make_driver(vpp, uplink="GigabitEthernet0/8/0").tunnel_mtu() == 9000 - 50
    assert make_driver(vpp).tunnel_mtu() == 1500 - 50
    assert make_driver(vpp).tunnel_mtu(underlay_v6=True) == 1500 - 70  # the outer IPv6 header is 20 bytes longer


# ------------------------------------------------------------------------------------------------ pure parts
def test_tags_fit_vpps_64_byte_field() -> None:
    v6_peer = PeerNode("n", ipaddress.ip_address("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"))
    assert len(plan.tunnel_tag(16_777_215, 6, v6_peer)) <= plan.TAG_MAX
    assert len(plan.network_tag(16_777_215)) <= plan.TAG_MAX
    long_name = NetworkSpec("n" * 63, 1, 1400, ())
    assert len(plan.vrf_name(long_name)) <= plan.VRF_NAME_MAX
    assert plan.vrf_name(long_name).startswith("multinet:")


def test_plan_keeps_networks_apart_and_in_the_agents_table_range(netns_dir: Path) -> None:
    want, *_ = full_state(netns_dir)
    objs = plan.vpp_objects(want)
    assert {v.table_id for v in objs.vrfs.values()} == {TABLE_BASE + 100, TABLE_BASE + 200}
    assert all(actual.owned_table(v.table_id) for v in objs.vrfs.values())
    red_routes = {r.prefix for r in objs.routes.values() if r.table_id == RED.table}
    assert red_routes == {ipaddress.ip_network(p) for p in ("0.0.0.0/0", "::/0", "10.1.0.5/32", "10.1.0.9/32")}


def test_route_diff_leaves_vpps_own_entries_alone() -> None:
    table = TABLE_BASE + 1
    vpp_owned = [
        actual.ActualRoute(table, ipaddress.ip_network("fe80::/10"), (actual.Path(calls.INVALID_INDEX, 0, None),)),
        actual.ActualRoute(
            table, ipaddress.ip_network("169.254.1.1/32"), (actual.Path(5, calls.FIB_API_PATH_TYPE_LOCAL, None),)
        ),
        actual.ActualRoute(table, ipaddress.ip_network("224.0.0.0/4"), (actual.Path(calls.INVALID_INDEX, 2, None),)),
    ]
    dangling = actual.ActualRoute(table, ipaddress.ip_network("10.0.0.1/32"), (actual.Path(99, 0, None),))
    foreign = actual.ActualRoute(table, ipaddress.ip_network("10.0.0.2/32"), (actual.Path(7, 0, None),))
    changes = diff.route_changes([], [*vpp_owned, dangling, foreign], {}, owned_sw={5}, existing_sw={5, 7})
    assert changes.deletes == [dangling] and changes.adds == []
