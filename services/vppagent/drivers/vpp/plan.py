"""What VPP should hold for one node's desired state, as plain records (pure: no I/O).

Interfaces are named by their ownership tag, never by sw_if_index: VPP hands out indexes at creation and reuses
them, while the tag is stored in VPP itself (sw_interface_details.tag), so a restarted agent finds its objects.
The driver resolves tags to indexes when it builds API calls (see calls.py)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ...model import (
    GATEWAY_V4,
    OWNER_ALIAS_PREFIX,
    VXLAN_PORT,
    DesiredNode,
    IPAddress,
    IPNetwork,
    NetworkSpec,
    PeerNode,
    PortSpec,
)

FAMILIES = (4, 6)
DEFAULTS: dict[int, IPNetwork] = {4: ipaddress.ip_network("0.0.0.0/0"), 6: ipaddress.ip_network("::/0")}

# VPP stores an interface tag in `string tag[64]` (interface.api: sw_interface_tag_add_del, sw_interface_details):
# 63 bytes and a NUL. model.port_alias (network/container-id/ifname, ~90 bytes) does not fit, so a port is tagged
# with its host_ifname, which is already a digest of exactly that key.
TAG_MAX = 63
PORT_TAG = OWNER_ALIAS_PREFIX + "port/"
NET_TAG = OWNER_ALIAS_PREFIX + "net/"
TUNNEL_TAG = OWNER_ALIAS_PREFIX + "vx/"
VRF_NAME_MAX = 63  # ip_table.name is string[64]

# Each network's loopback owns the pods' gateway address inside the network's VRF: taps and tunnels are unnumbered
# to it (which is what enables IPv4 and IPv6 on them), and VPP answers pods that ping their gateway.
LOOPBACK_ADDRESS = ipaddress.IPv4Interface(f"{GATEWAY_V4}/32")

# A route through a tunnel needs a next hop of its own family so VPP builds a neighbour adjacency. An L3 VXLAN
# interface has no L2 header to rewrite (default_update_adjacency completes the adjacency with an empty rewrite), so
# the address never reaches the wire: one fixed link-local per family keeps routes identical across restarts.
TUNNEL_NEXTHOP: dict[int, IPAddress] = {
    4: ipaddress.IPv4Address("169.254.0.1"),
    6: ipaddress.IPv6Address("fe80::2"),
}

# An L3 VXLAN tunnel decapsulates into one graph node (ip4-input or ip6-input), so it carries one inner family.
# Dual-stack networks get a second tunnel per peer; VPP keys tunnels by (src, dst, UDP port, encap VRF, VNI), so the
# IPv6 one needs its own port. 8472 is the kernel's historical VXLAN port: tcpdump/wireshark decode it as VXLAN, and
# VPP itself registers no listener there. Every node of a cluster must use the same map.
VXLAN_PORTS: dict[int, int] = {4: VXLAN_PORT, 6: 8472}


def port_tag(port: PortSpec) -> str:
    return PORT_TAG + port.host_ifname


def network_tag(vni: int) -> str:
    return f"{NET_TAG}{vni}"


def tunnel_tag(vni: int, inner: int, peer: PeerNode) -> str:
    return f"{TUNNEL_TAG}{vni}/v{inner}/{peer.underlay}"  # at most 63 bytes, even for an IPv6 underlay


def vrf_name(net: NetworkSpec) -> str:
    return f"{OWNER_ALIAS_PREFIX}{net.name}"[:VRF_NAME_MAX]


def families(net: NetworkSpec) -> tuple[int, ...]:
    found = sorted({r.version for r in net.ranges})
    return tuple(found) or (4,)


@dataclass(frozen=True, slots=True)
class Vrf:
    table_id: int
    is_ip6: bool
    name: str

    @property
    def key(self) -> tuple[int, bool]:
        return (self.table_id, self.is_ip6)


@dataclass(frozen=True, slots=True)
class Loopback:
    tag: str
    vni: int
    table_id: int
    address: ipaddress.IPv4Interface = LOOPBACK_ADDRESS


@dataclass(frozen=True, slots=True)
class Tap:
    tag: str
    table_id: int
    loopback: str  # tag of the loopback it is unnumbered to
    port: PortSpec


@dataclass(frozen=True, slots=True)
class Tunnel:
    tag: str
    table_id: int
    loopback: str
    vni: int
    inner: int  # family of the packets it carries: 4 or 6
    src: IPAddress
    dst: IPAddress
    udp_port: int


@dataclass(frozen=True, slots=True)
class Neighbour:
    iface: str  # tag
    address: IPAddress
    mac: str

    @property
    def key(self) -> tuple[str, IPAddress]:
        return (self.iface, self.address)


@dataclass(frozen=True, slots=True)
class Route:
    table_id: int
    prefix: IPNetwork
    iface: str = ""  # tag of the outgoing interface; "" = a drop route
    nexthop: IPAddress | None = None

    @property
    def key(self) -> tuple[int, IPNetwork]:
        return (self.table_id, self.prefix)

    @property
    def is_drop(self) -> bool:
        return not self.iface


@dataclass(slots=True)
class VppObjects:
    vrfs: dict[tuple[int, bool], Vrf] = field(default_factory=dict)
    loopbacks: dict[str, Loopback] = field(default_factory=dict)
    taps: dict[str, Tap] = field(default_factory=dict)
    tunnels: dict[str, Tunnel] = field(default_factory=dict)
    neighbours: dict[tuple[str, IPAddress], Neighbour] = field(default_factory=dict)
    routes: dict[tuple[int, IPNetwork], Route] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def tags(self) -> set[str]:
        return set(self.loopbacks) | set(self.taps) | set(self.tunnels)

    def add_route(self, route: Route) -> None:
        self.routes[route.key] = route


def network_objects(net: NetworkSpec, out: VppObjects) -> None:
    """A network's routing domain: one VRF for both families, ending in a drop route so nothing leaks."""
    for is_ip6 in (False, True):
        vrf = Vrf(net.table, is_ip6, vrf_name(net))
        out.vrfs[vrf.key] = vrf
    loop = Loopback(network_tag(net.vni), net.vni, net.table)
    out.loopbacks[loop.tag] = loop
    for version in FAMILIES:
        out.add_route(Route(net.table, DEFAULTS[version]))


def port_objects(port: PortSpec, net: NetworkSpec, out: VppObjects) -> None:
    tap = Tap(port_tag(port), net.table, network_tag(net.vni), port)
    out.taps[tap.tag] = tap
    for ip in port.ips:
        # A static neighbour so VPP never ARPs for the pod; the explicit host route carries the pod's address in
        # the VRF (the neighbour is added without its own FIB entry, see calls.neighbour).
        neigh = Neighbour(tap.tag, ip.ip, port.pod_mac)
        out.neighbours[neigh.key] = neigh
        out.add_route(Route(net.table, ipaddress.ip_network(ip.ip), tap.tag, ip.ip))


def tunnel_objects(desired: DesiredNode, net: NetworkSpec, ports: dict[int, int], out: VppObjects) -> None:
    """VXLAN for one network: an L3 tunnel per (peer, inner family), and a route per remote pod through it."""
    local = desired.underlay
    if local is None:
        return
    inner_families = families(net)
    usable: dict[str, PeerNode] = {}
    for peer in desired.peers.values():
        if peer.name == desired.node:
            continue
        if peer.underlay.version != local.version:
            out.problems.append(f"peer {peer.name}: underlay {peer.underlay} is not IPv{local.version} like ours")
            continue
        usable[peer.name] = peer
        for inner in inner_families:
            tun = Tunnel(
                tunnel_tag(net.vni, inner, peer),
                net.table,
                network_tag(net.vni),
                net.vni,
                inner,
                local,
                peer.underlay,
                ports[inner],
            )
            out.tunnels[tun.tag] = tun
    for remote in desired.remotes.values():
        peer_or_none = usable.get(remote.node)
        if remote.network != net.name or peer_or_none is None:
            continue
        version = remote.address.version
        if version not in inner_families:
            out.problems.append(f"remote {remote.address} of {net.name}: network has no IPv{version} range")
            continue
        tag = tunnel_tag(net.vni, version, peer_or_none)
        out.add_route(Route(net.table, ipaddress.ip_network(remote.address), tag, TUNNEL_NEXTHOP[version]))


def vpp_objects(desired: DesiredNode, ports: dict[int, int] | None = None) -> VppObjects:
    out = VppObjects()
    for net in desired.networks.values():
        network_objects(net, out)
        tunnel_objects(desired, net, ports or VXLAN_PORTS, out)
    for port in desired.ports.values():
        port_net = desired.networks.get(port.network)
        if port_net is None:
            out.problems.append(f"port {port.ifname} of {port.container_id}: unknown network {port.network}")
            continue
        port_objects(port, port_net, out)
    return out
