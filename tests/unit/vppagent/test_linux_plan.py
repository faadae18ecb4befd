"""The linux plan (desired objects) and its diff against what the kernel holds: pure, no kernel."""

from __future__ import annotations

import ipaddress
import os

import pytest
from multinet.v1 import agent_pb2, catalog_pb2

from services.vppagent.drivers.linux import plan
from services.vppagent.drivers.linux.diff import host_changes
from services.vppagent.model import (
    DesiredNode,
    NetworkSpec,
    PeerNode,
    PortRoute,
    PortSpec,
    RemoteEndpoint,
    peer_nexthop,
    table_for_vni,
)
from services.vppagent.state import ClusterState, desired_node

BLUE = NetworkSpec("blue", 1234, 1400, (ipaddress.ip_network("10.1.0.0/16"),))
RED = NetworkSpec("red", 1235, 1400, (ipaddress.ip_network("10.1.0.0/16"),))


def port(net: NetworkSpec, cid: str, ip: str) -> PortSpec:
    return PortSpec(
        net.name,
        cid,
        "eth1",
        f"/run/netns/{cid}",
        (ipaddress.ip_interface(f"{ip}/32"),),
        (PortRoute(net.ranges[0]),),
        1400,
    )


def test_same_address_on_two_networks_lands_in_two_tables() -> None:
    b, r = port(BLUE, "a", "10.1.0.1"), port(RED, "b", "10.1.0.1")
    desired = DesiredNode(node="n", networks={"blue": BLUE, "red": RED}, ports={b.key: b, r.key: r})
    objs = plan.host_objects(desired, 1350)
    dst = ipaddress.ip_network("10.1.0.1/32")
    assert objs.routes[(table_for_vni(1234), dst)].dev == b.host_ifname
    assert objs.routes[(table_for_vni(1235), dst)].dev == r.host_ifname
    assert b.host_ifname != r.host_ifname
    rules = {(rule.iifname, rule.table) for rule in objs.rules}
    assert (b.host_ifname, table_for_vni(1234)) in rules
    assert (r.host_ifname, table_for_vni(1235)) in rules
    for table in (table_for_vni(1234), table_for_vni(1235)):  # lookups end in the network's own table
        assert objs.routes[(table, ipaddress.ip_network("0.0.0.0/0"))].unreachable
        assert objs.routes[(table, ipaddress.ip_network("::/0"))].unreachable


def test_remote_endpoints_route_through_their_nodes_tunnel() -> None:
    desired = DesiredNode(
        node="n1",
        underlay=ipaddress.ip_address("172.16.0.1"),
        networks={"blue": BLUE},
        peers={"n2": PeerNode("n2", ipaddress.ip_address("172.16.0.2"))},
        remotes={
            ("blue", ipaddress.ip_address("10.1.0.9")): RemoteEndpoint("blue", ipaddress.ip_address("10.1.0.9"), "n2")
        },
    )
    objs = plan.host_objects(desired, 1450)
    route = objs.routes[(table_for_vni(1234), ipaddress.ip_network("10.1.0.9/32"))]
    assert route.dev == "mnvx1234" and route.gateway == peer_nexthop("n2") and route.onlink
    assert [f.remote for f in objs.fdb] == [ipaddress.ip_address("172.16.0.2")]
    assert objs.vxlans["mnvx1234"].mtu == 1450


def test_diff_adds_missing_replaces_changed_and_deletes_stale() -> None:
    p = port(BLUE, "a", "10.1.0.1")
    wanted = plan.host_objects(DesiredNode(node="n", networks={"blue": BLUE}, ports={p.key: p}), 1350)
    actual = plan.HostObjects()
    stale = plan.RouteObj(table_for_vni(1234), ipaddress.ip_network("10.1.0.66/32"), dev="mnold")
    actual.add_route(stale)
    changed_neigh = plan.NeighObj(p.host_ifname, ipaddress.ip_address("10.1.0.1"), "02:00:00:00:00:99")
    actual.add_neighbour(changed_neigh)
    changes = host_changes(wanted, actual)
    assert stale in changes.deletes
    assert changes.adds.neighbours[changed_neigh.key].mac == p.pod_mac
    assert changes.adds.rules == wanted.rules
    assert not host_changes(wanted, wanted).deletes
    assert not host_changes(wanted, wanted).adds.routes


def test_cluster_state_gives_local_ports_and_remote_endpoints() -> None:
    state = ClusterState()
    net = catalog_pb2.Network(name="blue", vni=1234, ranges=["10.1.0.0/16"])
    local = catalog_pb2.PodInterface(
        network="blue", container_id="a", ifname="eth1", netns="/run/netns/a", node="n1", ips=["10.1.0.1/32"]
    )
    remote = catalog_pb2.PodInterface(
        network="blue", container_id="b", ifname="eth1", netns="/run/netns/b", node="n2", ips=["10.1.0.2/32"]
    )
    nodes = [
        catalog_pb2.Node(name="n1", underlay_ip="172.16.0.1"),
        catalog_pb2.Node(name="n2", underlay_ip="172.16.0.2"),
    ]
    state.apply(
        agent_pb2.DesiredStateUpdate(revision=5, snapshot=True, networks=[net], nodes=nodes, interfaces=[local, remote])
    )
    desired = desired_node(state, "n1", "172.16.0.1", 1350)
    assert list(desired.ports) == [("blue", "a", "eth1")]
    assert list(desired.peers) == ["n2"]
    assert ("blue", ipaddress.ip_address("10.1.0.2")) in desired.remotes
    assert desired.networks["blue"].mtu == 1350  # no MTU on the network: the node's tunnel MTU
    state.apply(agent_pb2.DesiredStateUpdate(revision=6, removed_interfaces=[remote], removed_nodes=["n2"]))
    desired = desired_node(state, "n1", "172.16.0.1", 1350)
    assert not desired.remotes and not desired.peers
    assert state.revision == 6


def test_invalid_objects_are_skipped_not_fatal() -> None:
    state = ClusterState()
    good = catalog_pb2.Network(name="blue", vni=1234, ranges=["10.1.0.0/16"])
    bad = catalog_pb2.Network(name="Bad!", vni=0, ranges=["x"])
    bad_port = catalog_pb2.PodInterface(network="blue", container_id="", ifname="eth1", netns="rel", node="n1")
    state.apply(agent_pb2.DesiredStateUpdate(snapshot=True, networks=[good, bad], interfaces=[bad_port]))
    desired = desired_node(state, "n1", "", 1350)
    assert list(desired.networks) == ["blue"]
    assert not desired.ports


def test_cpu_mask_in_sysfs_form() -> None:
    from services.vppagent.drivers.linux.sysctl import cpu_mask

    assert cpu_mask(1) == "00000001"
    assert cpu_mask(2) == "00000003"
    assert cpu_mask(32) == "ffffffff"
    assert cpu_mask(40) == "000000ff,ffffffff"


def test_tunnel_receive_steering_is_off_unless_asked_and_rejects_garbage(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.vppagent.drivers.linux.sysctl import TUNNEL_RPS_ENV, cpu_mask, tunnel_rps_mask

    monkeypatch.delenv(TUNNEL_RPS_ENV, raising=False)
    assert tunnel_rps_mask() is None
    assert tunnel_rps_mask("off") is None
    assert tunnel_rps_mask(" 0 ") is None
    assert tunnel_rps_mask("00") is None and tunnel_rps_mask("0,00000000") is None  # no CPU: off
    assert tunnel_rps_mask("all") == cpu_mask(os.cpu_count() or 1)
    assert tunnel_rps_mask("3") == "3"
    assert tunnel_rps_mask("FF,ffffffff") == "ff,ffffffff"
    monkeypatch.setenv(TUNNEL_RPS_ENV, "2")
    assert tunnel_rps_mask() == "2"
    for bad in ("yes", "0x3", "ff,fff", "3;reboot", "-1"):
        with pytest.raises(ValueError, match=TUNNEL_RPS_ENV):
            tunnel_rps_mask(bad)
