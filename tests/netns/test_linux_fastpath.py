"""The tc-BPF fast path against the real kernel: two node namespaces joined by a fabric, dual-stack pods on two
networks with overlapping ranges, real TCP and ICMP.

Proof the fast path carries the traffic: the node's IP layer forwards none of it (IpForwDatagrams /
Ip6OutForwDatagrams do not move), while the same traffic with the fast path off is forwarded by the kernel (the
counters grow). (IpInReceives is no such proof: the fabric bridge's IGMP reports reach every node's uplink.)
Everything unusual (no route, TTL expiring) still reaches the kernel, which handles it exactly as without the
fast path; so does all traffic to and from a port shaped the way the CNI bandwidth plugin shapes it (its tbf
qdiscs count the packets), until the shaping goes away. The programs themselves are also run on crafted frames
(BPF_PROG_TEST_RUN) against the node's real routing tables: MACs, TTL, checksum, verdicts, the shaped-ports map.
What runs on a device is read back with BPF_PROG_QUERY (the tcx hook: `tc filter show` does not list it)."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import struct
import subprocess
from collections.abc import Iterator

import pytest

from services.vppagent.drivers.linux.driver import LinuxDriver
from services.vppagent.drivers.linux.fastpath import control, loader, maps, programs, tcx
from services.vppagent.drivers.linux.fastpath.asm import Asm, Reg
from services.vppagent.drivers.linux.fastpath.programs import Role
from services.vppagent.model import (
    HOST_SIDE_MAC,
    NetworkSpec,
    vtep_mac,
)
from tests.fixtures.cluster import Cluster, two_node_cluster
from tests.fixtures.fabric import Node, build_fabric
from tests.fixtures.fastpath import programs_on, qdisc_packets
from tests.fixtures.netns import Namespaces, inside, sh
from tests.fixtures.poll import wait_for
from tests.fixtures.traffic import Servers, ask

pytestmark = pytest.mark.netns
R4, R6 = ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("fd00:1::/64")
BLUE = NetworkSpec("blue", 1234, 1450, (R4, R6))
RED = NetworkSpec("red", 1235, 1450, (R4, R6))
TCX_NEXT, TC_ACT_REDIRECT = 0xFFFFFFFF, 7  # as the test run reports a verdict: u32


NETWORKS = {"blue": BLUE, "red": RED}


def _cluster(netns: Namespaces, fastpath: bool | None) -> Iterator[Cluster]:
    yield from two_node_cluster(netns, NETWORKS, fastpath)


@pytest.fixture
def cluster(netns: Namespaces, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """Auto mode: fast path on because this kernel supports it."""
    monkeypatch.setenv(control.ENV, "auto")
    yield from _cluster(netns, None)


@pytest.fixture(params=[True, False], ids=["fastpath", "kernel"])
def either(netns: Namespaces, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The same scenario with the fast path on and off: the kernel path is the reference behaviour."""
    yield from _cluster(netns, request.param)


# ---------------------------------------------------------------------------------------------------- helpers
def counters(ns: str) -> dict[str, int]:
    """The netns's IP/ICMP MIB counters (/proc/net/snmp and snmp6), e.g. IpForwDatagrams, Ip6InNoRoutes."""
    out: dict[str, int] = {}
    lines = sh(f"ip netns exec {ns} cat /proc/net/snmp").stdout.splitlines()
    for head, values in zip(lines[::2], lines[1::2], strict=True):
        prefix = head.split(":")[0]
        out.update({prefix + k: int(v) for k, v in zip(head.split()[1:], values.split()[1:], strict=True)})
    for line in sh(f"ip netns exec {ns} cat /proc/net/snmp6").stdout.splitlines():
        key, value = line.split()
        out[key] = int(value)
    return out


def delta(before: dict[str, int], after: dict[str, int], *keys: str) -> dict[str, int]:
    return {k: after[k] - before[k] for k in keys}


def ping_ttl(ns: str, address: str, count: int = 3, extra: str = "") -> int:
    """The TTL (hop limit) of echo replies; -1 when none came back."""
    out = sh(f"ip netns exec {ns} ping -c {count} -i 0.1 -W 1 {extra} {address}", check=False).stdout
    ttls = {int(t) for t in re.findall(r"ttl=(\d+)", out)}
    assert len(ttls) <= 1, out
    return ttls.pop() if ttls else -1


def iperf(server_ns: str, client_ns: str, address: str) -> float:
    """Bytes/s of a short single-stream TCP transfer (GSO/GRO-sized packets, not just pings)."""
    server = subprocess.Popen(
        ["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-p", "5201"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(50):
            out = sh(f"ip netns exec {client_ns} iperf3 -c {address} -p 5201 -n 20M -J", check=False)
            result = json.loads(out.stdout) if out.stdout.strip().startswith("{") else {}
            received = result.get("end", {}).get("sum_received")
            if out.returncode == 0 and received:  # else the server was not listening yet
                return float(received["bits_per_second"]) / 8
            sh("sleep 0.1")
        raise AssertionError(f"iperf3 to {address} failed: {out.stdout[-300:]}")
    finally:
        server.kill()
        server.wait()


def ifindex(ns: str, dev: str) -> int:
    return int(sh(f"ip -n {ns} -o link show {dev}").stdout.split(":")[0])


def attached(ns: str, dev: str) -> list[loader.ProgInfo]:
    """The programs on the device's tcx ingress, in the order they run."""
    return programs_on(ns, ifindex(ns, dev))


def names(ns: str, dev: str) -> list[str]:
    return [a.name for a in attached(ns, dev)]


def shape_like_bandwidth(ns: str, dev: str, ifb: str) -> None:
    """What the CNI bandwidth plugin does to a pod's host veth: a root tbf (traffic to the pod), and an ingress
    qdisc whose filter mirrors everything the pod sends to an ifb device with its own tbf."""
    tbf = "tbf rate 1gbit burst 256kb latency 25ms"
    sh(f"tc -n {ns} qdisc add dev {dev} root handle 1: {tbf}")
    sh(f"tc -n {ns} qdisc add dev {dev} ingress")
    sh(f"ip -n {ns} link add {ifb} type ifb && ip -n {ns} link set {ifb} up")
    sh(f"tc -n {ns} qdisc add dev {ifb} root handle 1: {tbf}")
    sh(
        f"tc -n {ns} filter add dev {dev} parent ffff: protocol all u32 match u32 0 0 "
        f"action mirred egress redirect dev {ifb}"
    )


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def checksum(header: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_frame(dst_mac: str, src_mac: str, src: str, dst: str, ttl: int = 64, ident: int = 1) -> bytes:
    icmp = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"x" * 32
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(icmp),
        ident,
        0x4000,
        ttl,
        1,
        0,
        *(ipaddress.ip_address(a).packed for a in (src, dst)),
    )
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return mac(dst_mac) + mac(src_mac) + b"\x08\x00" + header + icmp


def ipv6_frame(dst_mac: str, src_mac: str, src: str, dst: str, hops: int = 64) -> bytes:
    icmp = struct.pack("!BBHHH", 128, 0, 0, 1, 1) + b"x" * 32
    header = struct.pack("!IHBB", 0x60000000, len(icmp), 58, hops)
    header += ipaddress.ip_address(src).packed + ipaddress.ip_address(dst).packed
    return mac(dst_mac) + mac(src_mac) + b"\x86\xdd" + header + icmp


def run(
    node: Node, role: Role, net: NetworkSpec, dev: str, frame: bytes, shaped: tuple[str, ...] = ()
) -> loader.RunResult:
    """Run the program the driver attaches (same code, same table) on `frame` as if it arrived on `dev`, with
    the devices `shaped` in its shaped-ports map."""
    shaped_map = maps.IfindexSet.create("mnfp_test")
    try:
        for name in shaped:
            shaped_map.add(ifindex(node.netns, name))
        program = loader.load(programs.forward(net.table, role, shaped_map.fd), "mnfptest")
    finally:
        shaped_map.close()  # the program keeps the map
    try:
        index = ifindex(node.netns, dev)
        ctx = struct.pack("=11I", *([0] * 9), index, index)  # struct __sk_buff up to ifindex
        with inside(node.netns):
            return loader.run_once(program.fd, frame, ctx)
    finally:
        program.close()


# ---------------------------------------------------------------------------------------------------- tests
def test_on_by_default_with_one_program_on_every_port_and_tunnel_and_no_qdisc(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    n1, n2 = cluster.nodes
    _a, port = cluster.pod(n1, BLUE, "10.1.0.1", "fd00:1::1")
    _b, other = cluster.pod(n1, BLUE, "10.1.0.2", "fd00:1::2")
    cluster.pod(n2, BLUE, "10.1.0.3", "fd00:1::3")
    cluster.converge()
    assert all(d.fastpath for d in cluster.drivers.values())
    for dev, name in (
        (port.host_ifname, f"mnfpp{BLUE.table:x}"),
        ("mnvx1234", f"mnfpt{BLUE.table:x}"),
        ("mnvx1235", f"mnfpt{RED.table:x}"),  # one program per network
    ):
        assert names(n1.netns, dev) == [name]
    assert attached(n1.netns, port.host_ifname) == attached(n1.netns, other.host_ifname)  # shared by the ports
    # tcx needs no qdisc: the veth keeps the kernel's own (noqueue), so a chained plugin can add an ingress qdisc
    assert sh(f"tc -n {n1.netns} qdisc show dev {port.host_ifname}").stdout.split()[:2] == ["qdisc", "noqueue"]
    # the default, without MULTINET_FASTPATH set at all, is auto: on here
    monkeypatch.delenv(control.ENV)
    with inside(n1.netns):
        default = LinuxDriver("uplink0")
        try:
            assert default.fastpath
        finally:
            default.close()


def test_pods_talk_across_and_within_nodes_v4_v6_and_the_kernel_forwards_nothing(
    either: Cluster, whoami: Servers
) -> None:
    n1, n2 = either.nodes
    fast = either.drivers[n1.name].fastpath
    a, _ = either.pod(n1, BLUE, "10.1.0.1", "fd00:1::1")
    b, _ = either.pod(n1, BLUE, "10.1.0.2", "fd00:1::2")
    c, _ = either.pod(n2, BLUE, "10.1.0.3", "fd00:1::3")
    either.converge()
    for pod, name in ((a, "a"), (b, "b"), (c, "c")):
        whoami.start(pod, name)
    keys = ("IpForwDatagrams", "Ip6OutForwDatagrams")

    before = counters(n1.netns)
    assert (ask(a, "10.1.0.2"), ask(b, "10.1.0.1"), ask(a, "fd00:1::2"), ask(b, "fd00:1::1")) == ("b", "a", "b", "a")
    assert ping_ttl(a, "10.1.0.2") == 63
    assert ping_ttl(a, "fd00:1::2") == 63
    assert iperf(b, a, "10.1.0.2") > 0
    same = delta(before, counters(n1.netns), *keys)

    before1, before2 = counters(n1.netns), counters(n2.netns)
    assert (ask(a, "10.1.0.3"), ask(c, "10.1.0.1"), ask(a, "fd00:1::3"), ask(c, "fd00:1::2")) == ("c", "a", "c", "b")
    assert ping_ttl(a, "10.1.0.3") == 62  # one hop per node, as the kernel counts them
    assert ping_ttl(c, "fd00:1::1") == 62
    assert iperf(c, a, "10.1.0.3") > 0
    assert iperf(a, c, "fd00:1::1") > 0
    cross1, cross2 = delta(before1, counters(n1.netns), *keys), delta(before2, counters(n2.netns), *keys)

    if fast:
        assert same == cross1 == cross2 == {"IpForwDatagrams": 0, "Ip6OutForwDatagrams": 0}
    else:  # the reference: the kernel forwards every one of those packets
        assert min(same.values()) > 10, same
        assert min(cross1.values()) > 10 and min(cross2.values()) > 10, (cross1, cross2)


def test_overlapping_networks_stay_isolated(cluster: Cluster, whoami: Servers) -> None:
    n1, n2 = cluster.nodes
    blue1, _ = cluster.pod(n1, BLUE, "10.1.0.1", "fd00:1::1")
    red1, _ = cluster.pod(n1, RED, "10.1.0.1", "fd00:1::1")
    blue2, _ = cluster.pod(n2, BLUE, "10.1.0.2", "fd00:1::2")
    red2, _ = cluster.pod(n2, RED, "10.1.0.2", "fd00:1::2")
    red_only_local, _ = cluster.pod(n1, RED, "10.1.0.8", "fd00:1::8")
    red_only_remote, _ = cluster.pod(n2, RED, "10.1.0.9", "fd00:1::9")
    cluster.converge()
    for pod, name in ((blue1, "blue1"), (red1, "red1"), (blue2, "blue2"), (red2, "red2")):
        whoami.start(pod, name)
    whoami.start(red_only_local, "red8")
    whoami.start(red_only_remote, "red9")
    for family in ("10.1.0.", "fd00:1::"):
        assert ask(blue1, f"{family}2") == "blue2"
        assert ask(red1, f"{family}2") == "red2"
        assert ask(blue2, f"{family}1") == "blue1"
        assert ask(red2, f"{family}1") == "red1"
        assert ask(red1, f"{family}8") == "red8"
        assert ask(red1, f"{family}9") == "red9"
        assert ask(blue1, f"{family}8").startswith("ERR"), "blue reached a red pod on its node"
        assert ask(blue1, f"{family}9").startswith("ERR"), "blue reached a red pod on the other node"
        assert ask(blue2, f"{family}8").startswith("ERR"), "blue reached a red pod across the tunnel"


def test_unusual_packets_are_left_to_the_kernel_which_handles_them_as_before(either: Cluster) -> None:
    """No route (the table's unreachable default) and expiring TTLs: the programs pass them, the kernel counts
    and drops them exactly as without the fast path (its ICMP errors have no way back into a pod's network)."""
    n1, n2 = either.nodes
    a, _ = either.pod(n1, BLUE, "10.1.0.1", "fd00:1::1")
    either.pod(n2, BLUE, "10.1.0.3", "fd00:1::3")
    either.converge()
    keys = ("IpInReceives", "IpForwDatagrams", "Ip6InNoRoutes", "IpInHdrErrors", "Ip6InHdrErrors")

    before = counters(n1.netns)
    assert ping_ttl(a, "10.1.0.99", count=1) == -1
    assert ping_ttl(a, "fd00:1::99", count=1) == -1
    got = delta(before, counters(n1.netns), *keys)
    assert got["IpInReceives"] >= 1 and got["Ip6InNoRoutes"] == 1 and got["IpForwDatagrams"] == 0, got

    before = counters(n1.netns)
    assert ping_ttl(a, "10.1.0.3", count=1, extra="-t 1") == -1
    assert ping_ttl(a, "fd00:1::3", count=1, extra="-t 1") == -1
    got = delta(before, counters(n1.netns), *keys)
    assert got["IpInHdrErrors"] == 1 and got["Ip6InHdrErrors"] == 1 and got["IpForwDatagrams"] == 0, got
    assert ping_ttl(a, "10.1.0.3", count=1, extra="-t 3") == 62  # enough for its two hops


def test_programs_rewrite_frames_like_a_router(cluster: Cluster) -> None:
    """BPF_PROG_TEST_RUN against the nodes' real tables: verdicts, MACs, TTL/hop limit, IPv4 checksum."""
    n1, n2 = cluster.nodes
    _a, pa = cluster.pod(n1, BLUE, "10.1.0.1", "fd00:1::1")
    _b, pb = cluster.pod(n1, BLUE, "10.1.0.2", "fd00:1::2")
    _c, pc = cluster.pod(n2, BLUE, "10.1.0.3", "fd00:1::3")
    cluster.pod(n1, RED, "10.1.0.4", "fd00:1::4")
    cluster.converge()
    port = pa.host_ifname

    # pod → local pod: redirect into the pod, addressed to its MAC, TTL - 1, checksum still valid; an IPv4
    # checksum whose update carries (0xfeff + 0x0100 wraps around) included
    carry = next(
        i
        for i in range(1 << 16)
        if ipv4_frame(HOST_SIDE_MAC, pa.pod_mac, "10.1.0.1", "10.1.0.2", ident=i)[24:26] == b"\xfe\xff"
    )
    for ident in (1, carry):
        frame = ipv4_frame(HOST_SIDE_MAC, pa.pod_mac, "10.1.0.1", "10.1.0.2", ident=ident)
        out = run(n1, Role.PORT, BLUE, port, frame)
        assert out.retval == TC_ACT_REDIRECT
        assert out.data[:12] == mac(pb.pod_mac) + mac(HOST_SIDE_MAC)
        assert out.data[22] == 63 and checksum(out.data[14:34]) == 0
        assert out.data[12:22] + out.data[23:24] + out.data[26:] == frame[12:22] + frame[23:24] + frame[26:]
    out = run(n1, Role.PORT, BLUE, port, ipv6_frame(HOST_SIDE_MAC, pa.pod_mac, "fd00:1::1", "fd00:1::2"))
    assert out.retval == TC_ACT_REDIRECT and out.data[:12] == mac(pb.pod_mac) + mac(HOST_SIDE_MAC)
    assert out.data[21] == 63

    # pod → remote pod: out of the tunnel device, to the peer VTEP's MAC (for IPv4 resolved through the route's
    # IPv6 next hop), from the tunnel's own MAC
    tunnel = mac(vtep_mac(n2.name, BLUE.vni)) + mac(vtep_mac(n1.name, BLUE.vni))
    for frame in (
        ipv4_frame(HOST_SIDE_MAC, pa.pod_mac, "10.1.0.1", "10.1.0.3"),
        ipv6_frame(HOST_SIDE_MAC, pa.pod_mac, "fd00:1::1", "fd00:1::3"),
    ):
        out = run(n1, Role.PORT, BLUE, port, frame)
        assert (out.retval, out.data[:12]) == (TC_ACT_REDIRECT, tunnel)

    # left to the kernel, untouched: no route, another network's pod, TTL 1, not addressed to this device
    untouched = (
        ipv4_frame(HOST_SIDE_MAC, pa.pod_mac, "10.1.0.1", "10.1.0.99"),
        ipv4_frame(HOST_SIDE_MAC, pa.pod_mac, "10.1.0.1", "10.1.0.4"),
        ipv6_frame(HOST_SIDE_MAC, pa.pod_mac, "fd00:1::1", "fd00:1::4"),
        ipv4_frame(HOST_SIDE_MAC, pa.pod_mac, "10.1.0.1", "10.1.0.2", ttl=1),
        ipv6_frame(HOST_SIDE_MAC, pa.pod_mac, "fd00:1::1", "fd00:1::2", hops=1),
        ipv4_frame("02:00:00:00:00:01", pa.pod_mac, "10.1.0.1", "10.1.0.2"),
        ipv4_frame(HOST_SIDE_MAC, pa.pod_mac, "127.0.0.1", "10.1.0.2"),
        ipv6_frame(HOST_SIDE_MAC, pa.pod_mac, "fe80::1", "fd00:1::2"),
    )
    for frame in untouched:
        out = run(n1, Role.PORT, BLUE, port, frame)
        assert (out.retval, out.data) == (TCX_NEXT, frame)
    red = ipv4_frame(vtep_mac(n1.name, RED.vni), vtep_mac(n2.name, RED.vni), "10.1.0.3", "10.1.0.4")
    assert run(n1, Role.TUNNEL, RED, "mnvx1235", red).retval == TC_ACT_REDIRECT  # in red's own table it is there

    # tunnel → local pod: into the pod; tunnel → a pod elsewhere (hairpin): the kernel's
    vx = vtep_mac(n2.name, BLUE.vni)
    out = run(n2, Role.TUNNEL, BLUE, "mnvx1234", ipv4_frame(vx, vtep_mac(n1.name, BLUE.vni), "10.1.0.1", "10.1.0.3"))
    assert (out.retval, out.data[:12], out.data[22]) == (TC_ACT_REDIRECT, mac(pc.pod_mac) + mac(HOST_SIDE_MAC), 63)
    out = run(n2, Role.TUNNEL, BLUE, "mnvx1234", ipv6_frame(vx, vtep_mac(n1.name, BLUE.vni), "fd00:1::1", "fd00:1::3"))
    assert (out.retval, out.data[21]) == (TC_ACT_REDIRECT, 63)
    hairpin = ipv4_frame(vx, vtep_mac(n1.name, BLUE.vni), "10.1.0.3", "10.1.0.1")
    assert run(n2, Role.TUNNEL, BLUE, "mnvx1234", hairpin).retval == TCX_NEXT

    # a shaped destination port: the kernel's, untouched, from a pod and from the tunnel; the map holds
    # ifindexes, so another shaped port changes nothing for this one
    frame = ipv4_frame(HOST_SIDE_MAC, pa.pod_mac, "10.1.0.1", "10.1.0.2")
    assert run(n1, Role.PORT, BLUE, port, frame, shaped=(pb.host_ifname,)).data == frame
    assert run(n1, Role.PORT, BLUE, port, frame, shaped=(pb.host_ifname,)).retval == TCX_NEXT
    assert run(n1, Role.PORT, BLUE, port, frame, shaped=(port,)).retval == TC_ACT_REDIRECT
    frame = ipv6_frame(HOST_SIDE_MAC, pa.pod_mac, "fd00:1::1", "fd00:1::2")
    assert (run(n1, Role.PORT, BLUE, port, frame, shaped=(pb.host_ifname,)).retval) == TCX_NEXT
    frame = ipv4_frame(vx, vtep_mac(n1.name, BLUE.vni), "10.1.0.1", "10.1.0.3")
    assert run(n2, Role.TUNNEL, BLUE, "mnvx1234", frame, shaped=(pc.host_ifname,)).retval == TCX_NEXT
    # a shaped port's traffic to elsewhere is not the map's business (its host veth runs no program of ours)
    frame = ipv4_frame(HOST_SIDE_MAC, pa.pod_mac, "10.1.0.1", "10.1.0.3")
    assert run(n1, Role.PORT, BLUE, port, frame, shaped=(port,)).retval == TC_ACT_REDIRECT


def _pass_through(name: str) -> loader.Program:
    """Someone else's program (not named mnfp...): returns TCX_NEXT, changes nothing."""
    a = Asm()
    a.mov(Reg.R0, programs.TCX_NEXT)
    a.exit()
    return loader.load(a.assemble(), name)


def _tamper(ns: str, port: str) -> None:
    """What a resync must repair on node `ns`: ours missing from `port` (where someone else's program stays),
    other code under our prefix on red's tunnel (as an older agent version's would be), and a second copy of
    ours on blue's tunnel."""
    spare = maps.IfindexSet.create("mnfp_test")
    loaded = [
        _pass_through("foreign"),
        loader.load(programs.forward(BLUE.table, Role.TUNNEL, spare.fd), "mnfpstale"),
        loader.load(programs.forward(BLUE.table, Role.TUNNEL, spare.fd), "mnfpcopy"),
    ]
    spare.close()
    foreign, stale, copy = loaded
    port_index, red_index, blue_index = (ifindex(ns, d) for d in (port, "mnvx1235", "mnvx1234"))
    ((ours_port,), (ours_red,)) = attached(ns, port), attached(ns, "mnvx1235")
    try:
        with inside(ns):
            fd = loader.fd_by_id(ours_port.prog_id)
            try:
                tcx.detach(port_index, fd)
            finally:
                os.close(fd)
            tcx.attach(port_index, foreign.fd)
            fd = loader.fd_by_id(ours_red.prog_id)
            try:
                tcx.attach(red_index, stale.fd, replace_fd=fd)
            finally:
                os.close(fd)
            tcx.attach(blue_index, copy.fd)
    finally:
        for program in loaded:
            program.close()  # the attachments keep them


def test_resync_repairs_programs_and_a_restarted_agent_takes_over(cluster: Cluster, whoami: Servers) -> None:
    n1, n2 = cluster.nodes
    a, pa = cluster.pod(n1, BLUE, "10.1.0.1", "fd00:1::1")
    b, pb = cluster.pod(n1, BLUE, "10.1.0.2", "fd00:1::2")
    c, _ = cluster.pod(n2, BLUE, "10.1.0.3", "fd00:1::3")
    cluster.converge()
    port, blue, red = f"mnfpp{BLUE.table:x}", f"mnfpt{BLUE.table:x}", f"mnfpt{RED.table:x}"
    _tamper(n1.netns, pa.host_ifname)
    assert names(n1.netns, pa.host_ifname) == ["foreign"]
    assert (names(n1.netns, "mnvx1234"), names(n1.netns, "mnvx1235")) == ([blue, "mnfpcopy"], ["mnfpstale"])
    with inside(n1.netns):
        assert cluster.drivers[n1.name].check(pa, BLUE) == [
            f"fast-path program missing or outdated on {pa.host_ifname}"
        ]
        report = cluster.drivers[n1.name].reconcile(cluster.desired(n1))
        assert cluster.drivers[n1.name].check(pa, BLUE) == []
    assert (report.added, report.removed, report.problems) == (2, 1, []), report
    assert names(n1.netns, pa.host_ifname) == ["foreign", port]  # someone else's program is left alone
    assert (names(n1.netns, "mnvx1234"), names(n1.netns, "mnvx1235")) == ([blue], [red])

    # a restarted agent: its own programs (own ids, own map) replace the earlier process's, one per device
    devices = (pa.host_ifname, pb.host_ifname, "mnvx1234", "mnvx1235")
    before = {dev: [p for p in attached(n1.netns, dev) if p.name.startswith("mnfp")] for dev in devices}
    with inside(n1.netns):
        cluster.drivers[n1.name].close()
        cluster.drivers[n1.name] = restarted = LinuxDriver("uplink0")  # the fixture closes it
        report = restarted.reconcile(cluster.desired(n1))
    assert report.changed == 0 and not report.problems, report  # a hand-over, not a repair
    after = {dev: [p for p in attached(n1.netns, dev) if p.name.startswith("mnfp")] for dev in devices}
    for dev in devices:
        assert [p.name for p in after[dev]] == [p.name for p in before[dev]], dev  # exactly one, same code
        assert after[dev][0].prog_id != before[dev][0].prog_id, dev
    (new_map,) = {p.map_ids for ours in after.values() for p in ours}
    (old_map,) = {p.map_ids for ours in before.values() for p in ours}
    assert new_map != old_map and len(new_map) == 1

    # still the fast path; and the new agent's map is the one the programs consult: a port it sees shaped is
    # kept out of redirects (with the earlier process's programs still on a's port, a → b would skip the tbf)
    whoami.start(b, "b")
    whoami.start(c, "c")
    before_counts = counters(n1.netns)
    assert ask(a, "10.1.0.3") == "c" and ask(a, "10.1.0.2") == "b"
    assert delta(before_counts, counters(n1.netns), "IpForwDatagrams") == {"IpForwDatagrams": 0}
    shape_like_bandwidth(n1.netns, pb.host_ifname, "bwtest0")
    wait_for(lambda: names(n1.netns, pb.host_ifname) == [], 5.0, "the shaped port to lose its program")
    shaped_before = qdisc_packets(n1.netns, pb.host_ifname, "tbf")
    assert ping_ttl(a, "10.1.0.2", count=5) == 63
    assert qdisc_packets(n1.netns, pb.host_ifname, "tbf") - shaped_before >= 5


def test_a_port_shaped_like_the_bandwidth_plugin_does_keeps_the_kernel_path_until_unshaped(
    cluster: Cluster, whoami: Servers
) -> None:
    """The bandwidth plugin's qdiscs arrive after multinet's ADD: the watcher takes the port off the fast path
    (no program on its host veth, its ifindex in the map) and puts it back when they go; every packet to or
    from it meanwhile goes through the kernel and its tbfs, while the other ports keep the fast path."""
    n1, n2 = cluster.nodes
    a, _ = cluster.pod(n1, BLUE, "10.1.0.1", "fd00:1::1")
    b, pb = cluster.pod(n1, BLUE, "10.1.0.2", "fd00:1::2")
    c, _ = cluster.pod(n2, BLUE, "10.1.0.3", "fd00:1::3")
    cluster.converge()
    for pod, name in ((a, "a"), (b, "b"), (c, "c")):
        whoami.start(pod, name)
    dev, ifb, driver = pb.host_ifname, "bwtest0", cluster.drivers[n1.name]
    assert names(n1.netns, dev) == [f"mnfpp{BLUE.table:x}"]

    shape_like_bandwidth(n1.netns, dev, ifb)
    wait_for(lambda: names(n1.netns, dev) == [], 5.0, "the watcher to take our program off the shaped port")
    to_b, from_b = qdisc_packets(n1.netns, dev, "tbf"), qdisc_packets(n1.netns, ifb, "tbf")
    before = counters(n1.netns)
    assert ping_ttl(a, "10.1.0.2", count=5) == 63  # pod → shaped pod on the node
    assert ping_ttl(c, "fd00:1::2", count=5) == 62  # across the tunnel
    assert ping_ttl(b, "10.1.0.3", count=5) == 62  # from the shaped pod
    assert (ask(a, "10.1.0.2"), ask(c, "fd00:1::2"), ask(b, "10.1.0.3")) == ("b", "b", "c")
    forwarded = delta(before, counters(n1.netns), "IpForwDatagrams", "Ip6OutForwDatagrams")
    assert qdisc_packets(n1.netns, dev, "tbf") - to_b >= 15, "traffic to the shaped pod skipped its tbf"
    assert qdisc_packets(n1.netns, ifb, "tbf") - from_b >= 15, "traffic from the shaped pod skipped its tbf"
    assert forwarded["IpForwDatagrams"] >= 20 and forwarded["Ip6OutForwDatagrams"] >= 5, forwarded

    # the other ports keep the fast path; a resync and CHECK agree with the watcher
    before = counters(n1.netns)
    assert ask(a, "10.1.0.3") == "c" and ping_ttl(c, "10.1.0.1") == 62
    assert delta(before, counters(n1.netns), "IpForwDatagrams") == {"IpForwDatagrams": 0}
    with inside(n1.netns):
        report = driver.reconcile(cluster.desired(n1))
        assert driver.check(pb, BLUE) == []
    assert report.changed == 0 and not report.problems, report

    # the shaping goes: back on the fast path, both ways
    sh(f"tc -n {n1.netns} qdisc del dev {dev} root && tc -n {n1.netns} qdisc del dev {dev} ingress")
    wait_for(lambda: names(n1.netns, dev) == [f"mnfpp{BLUE.table:x}"], 5.0, "the port to get its program back")
    before = counters(n1.netns)
    assert (ask(a, "10.1.0.2"), ask(c, "fd00:1::2"), ask(b, "10.1.0.3")) == ("b", "b", "c")
    assert ping_ttl(c, "10.1.0.2", count=5) == 62
    assert delta(before, counters(n1.netns), "IpForwDatagrams", "Ip6OutForwDatagrams") == {
        "IpForwDatagrams": 0,
        "Ip6OutForwDatagrams": 0,
    }


def test_switched_off_by_option_a_resync_removes_ours_and_routing_carries_on(cluster: Cluster, whoami: Servers) -> None:
    n1, n2 = cluster.nodes
    a, pa = cluster.pod(n1, BLUE, "10.1.0.1", "fd00:1::1")
    c, _ = cluster.pod(n2, BLUE, "10.1.0.3", "fd00:1::3")
    cluster.converge()
    devices = (pa.host_ifname, "mnvx1234", "mnvx1235")
    assert all(len(names(n1.netns, dev)) == 1 for dev in devices)
    with inside(n1.netns):
        off = LinuxDriver("uplink0", fastpath=False)
        try:
            assert not off.fastpath
            report = off.reconcile(cluster.desired(n1))
            assert off.check(pa, BLUE) == []
        finally:
            off.close()
    assert report.removed == 3 and report.added == 0 and not report.problems, report  # 1 port, 2 tunnels
    assert all(names(n1.netns, dev) == [] for dev in devices)
    whoami.start(c, "c")
    before = counters(n1.netns)
    assert ask(a, "10.1.0.3") == "c"
    assert delta(before, counters(n1.netns), "IpForwDatagrams")["IpForwDatagrams"] > 0


def test_without_bpf_the_routing_path_works_unchanged(
    netns: Namespaces, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, whoami: Servers
) -> None:
    monkeypatch.setenv(control.ENV, "auto")
    monkeypatch.setattr(control, "probe", lambda: "bpf(2): Operation not permitted (simulated)")
    _fabric, nodes = build_fabric(netns, 2)
    cluster = Cluster(netns, nodes, NETWORKS)
    try:
        n1, n2 = cluster.nodes
        a, pa = cluster.pod(n1, BLUE, "10.1.0.1", "fd00:1::1")
        c, _ = cluster.pod(n2, BLUE, "10.1.0.3", "fd00:1::3")
        cluster.converge()
        assert not any(d.fastpath for d in cluster.drivers.values())
        assert [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()] == [
            "tc-BPF fast path unavailable, the routing path carries everything: bpf(2): Operation not permitted "
            "(simulated)"
        ]  # once, although two drivers started
        assert names(n1.netns, pa.host_ifname) == [] and names(n1.netns, "mnvx1234") == []
        whoami.start(c, "c")
        assert ask(a, "10.1.0.3") == "c"
        assert ask(a, "fd00:1::3") == "c"
    finally:
        cluster.close()
