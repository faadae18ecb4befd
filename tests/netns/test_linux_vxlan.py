"""Two nodes joined by a fabric, the linux driver on each: pods reach same-network pods on the other node through
their network's VXLAN VNI, the same addresses exist on blue and red, nothing crosses between networks, and a
full-size don't-fragment packet passes."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator

import pytest

from services.vppagent.drivers.linux.driver import LinuxDriver
from services.vppagent.model import NetworkSpec
from tests.fixtures.cluster import Cluster, two_node_cluster
from tests.fixtures.fabric import Node, build_fabric
from tests.fixtures.netns import Namespaces, inside, sh
from tests.fixtures.traffic import Servers, ask

pytestmark = pytest.mark.netns
RANGE = ipaddress.ip_network("192.168.0.0/16")
BLUE = NetworkSpec("blue", 1234, 1450, (RANGE,))
RED = NetworkSpec("red", 1235, 1450, (RANGE,))


@pytest.fixture
def cluster(netns: Namespaces) -> Iterator[Cluster]:
    yield from two_node_cluster(netns, {"blue": BLUE, "red": RED})


def test_pods_on_two_nodes_talk_per_network_only(cluster: Cluster, whoami: Servers) -> None:
    n1, n2 = cluster.nodes
    blue1, red1 = cluster.pod(n1, BLUE, "192.168.0.1").netns, cluster.pod(n1, RED, "192.168.0.1").netns
    blue2, red2 = cluster.pod(n2, BLUE, "192.168.0.2").netns, cluster.pod(n2, RED, "192.168.0.2").netns
    cluster.converge()
    for pod, name in ((blue1, "blue1"), (red1, "red1"), (blue2, "blue2"), (red2, "red2")):
        whoami.start(pod, name)
    assert ask(blue2, "192.168.0.1") == "blue1"
    assert ask(red2, "192.168.0.1") == "red1"
    assert ask(blue1, "192.168.0.2") == "blue2"
    assert ask(red1, "192.168.0.2") == "red2"
    # the VNI on the wire is the network's: the tunnel devices carry the catalog's VNIs
    details = json.loads(sh(f"ip -n {n1.netns} -d -j link show type vxlan").stdout)
    assert sorted(d["linkinfo"]["info_data"]["id"] for d in details) == [1234, 1235]


def test_full_size_dont_fragment_packet_crosses_nodes(cluster: Cluster) -> None:
    n1, n2 = cluster.nodes
    a, b = cluster.pod(n1, BLUE, "192.168.0.1").netns, cluster.pod(n2, BLUE, "192.168.0.2").netns
    cluster.converge()
    mtu = json.loads(sh(f"ip -n {a} -j link show eth1").stdout)[0]["mtu"]
    assert mtu == 1450  # 1500 uplink minus VXLAN over IPv4
    payload = mtu - 28  # IPv4 + ICMP headers
    assert sh(f"ip netns exec {a} ping -c 2 -W 2 -M do -s {payload} 192.168.0.2").returncode == 0
    too_big = sh(f"ip netns exec {a} ping -c 1 -W 1 -M do -s {payload + 1} 192.168.0.2", check=False)
    assert too_big.returncode != 0
    assert b


def test_ipv6_underlay_leaves_room_for_its_longer_header(netns: Namespaces) -> None:
    """Over an IPv6 underlay the encapsulation costs 70 bytes, not 50: the tunnel device says so (a too-big packet
    gets "fragmentation needed" instead of vanishing on the wire) and a full-size packet of a 1430 network crosses."""
    _fabric, nodes = build_fabric(netns, 2, ipv6=True)
    net = NetworkSpec("blue", 1234, 1430, (RANGE,))
    cluster = Cluster(netns, nodes, {"blue": net})
    try:
        n1, n2 = nodes
        a, _b = cluster.pod(n1, net, "192.168.0.1").netns, cluster.pod(n2, net, "192.168.0.2").netns
        cluster.converge()
        with inside(n1.netns):
            assert cluster.drivers[n1.name].tunnel_mtu(underlay_v6=True) == 1430
        tunnel = json.loads(sh(f"ip -n {n1.netns} -d -j link show mnvx1234").stdout)[0]
        assert (tunnel["mtu"], tunnel["linkinfo"]["info_data"]["local6"]) == (1430, n1.underlay)
        assert sh(f"ip netns exec {a} ping -c 2 -W 2 -M do -s {1430 - 28} 192.168.0.2").returncode == 0
    finally:
        cluster.close()


def test_remote_pod_and_peer_removal_drop_routes_and_tunnel_entries(cluster: Cluster, whoami: Servers) -> None:
    n1, n2 = cluster.nodes
    a, b = cluster.pod(n1, BLUE, "192.168.0.1").netns, cluster.pod(n2, BLUE, "192.168.0.2").netns
    cluster.converge()
    whoami.start(b, "b")
    assert ask(a, "192.168.0.2") == "b"
    cluster.ports[n2.name].clear()  # the remote pod is gone from the desired state
    cluster.converge(full=False)
    routes = sh(f"ip -n {n1.netns} route show table all").stdout
    assert "192.168.0.2 via" not in routes
    assert ask(a, "192.168.0.2").startswith("ERR")
    assert n2.underlay in sh(f"bridge -n {n1.netns} fdb show dev mnvx1234").stdout
    cluster.nodes = [n1]  # node2 leaves: its next hop and forwarding entries go too
    cluster.converge(full=False)
    assert "proto 109" not in sh(f"ip -n {n1.netns} neigh show dev mnvx1234").stdout
    assert n2.underlay not in sh(f"bridge -n {n1.netns} fdb show dev mnvx1234").stdout


def test_network_removed_takes_its_tunnel_and_table_everywhere(cluster: Cluster) -> None:
    n1, n2 = cluster.nodes
    cluster.pod(n1, RED, "192.168.0.1")
    cluster.pod(n2, RED, "192.168.0.2")
    cluster.converge()
    del cluster.networks["red"]
    cluster.converge(full=False)
    for node in cluster.nodes:
        assert "mnvx1235" not in sh(f"ip -n {node.netns} -br link").stdout
        assert "268436691" not in sh(f"ip -n {node.netns} route show table all").stdout
        assert "268436691" not in sh(f"ip -n {node.netns} rule").stdout


def test_restarted_driver_converges_without_changes(cluster: Cluster) -> None:
    n1, n2 = cluster.nodes
    cluster.pod(n1, BLUE, "192.168.0.1")
    cluster.pod(n2, BLUE, "192.168.0.2")
    cluster.converge()
    with inside(n1.netns):
        fresh = LinuxDriver("uplink0")
        try:
            report = fresh.reconcile(cluster.desired(n1))
        finally:
            fresh.close()
    assert report.changed == 0, report
    assert not report.problems


def test_foreign_device_with_a_tunnel_name_is_left_alone(cluster: Cluster) -> None:
    n1, _n2 = cluster.nodes
    sh(f"ip -n {n1.netns} link add mnvx1234 type bridge")  # someone else's device, our tunnel's name
    cluster.pod(n1, BLUE, "192.168.0.1")
    with inside(n1.netns):
        report = cluster.drivers[n1.name].reconcile(cluster.desired(n1))
    assert any("mnvx1234 is a bridge, not the tunnel for VNI 1234" in p for p in report.problems), report.problems
    dummy = json.loads(sh(f"ip -n {n1.netns} -d -j link show mnvx1234").stdout)[0]
    assert dummy["linkinfo"]["info_kind"] == "bridge" and "ifalias" not in dummy  # not marked, not deleted
    assert "mnvx1235" in sh(f"ip -n {n1.netns} -br link").stdout  # the other network is unaffected


def test_tunnels_follow_a_new_vtep_address_and_uplink_mtu(cluster: Cluster, whoami: Servers) -> None:
    """A restarted agent whose node got another underlay address re-creates its tunnels from it; a changed uplink
    MTU is applied to the tunnels in place."""
    n1, n2 = cluster.nodes
    a, b = cluster.pod(n1, BLUE, "192.168.0.1").netns, cluster.pod(n2, BLUE, "192.168.0.2").netns
    cluster.converge()
    sh(f"ip -n {n1.netns} addr add 10.250.0.101/24 dev uplink0")
    moved = Node(n1.name, n1.netns, "10.250.0.101")
    cluster.nodes = [moved, n2]
    sh(f"ip -n {n1.netns} link set uplink0 mtu 1400")
    cluster.converge()
    tunnel = json.loads(sh(f"ip -n {n1.netns} -d -j link show mnvx1234").stdout)[0]
    assert (tunnel["linkinfo"]["info_data"]["local"], tunnel["mtu"]) == ("10.250.0.101", 1350)
    assert tunnel["ifalias"] == "multinet:vxlan/1234"
    whoami.start(b, "b")
    assert ask(a, "192.168.0.2") == "b"  # node 2 now sends to the new address
