"""What the linux dataplane of one node should contain, as plain records (pure: no I/O).

Objects are keyed by what identifies them in the kernel (table + destination, interface name + address, ...),
so the driver can diff them against what it reads back and apply only the difference."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from ...model import (
    DesiredNode,
    IPAddress,
    IPNetwork,
    NetworkSpec,
    PortSpec,
    host_network,
    peer_nexthop,
    vtep_mac,
    vxlan_ifname,
)

# Rules that send pod and tunnel traffic to its network's table come first; the kernel's `local` table is moved
# right behind them so a pod can never reach an address that happens to be local to the node.
PORT_RULE_PRIORITY = 100
LOCAL_RULE_PRIORITY = 110
FAMILIES = (4, 6)
DEFAULTS: dict[int, IPNetwork] = {4: ipaddress.ip_network("0.0.0.0/0"), 6: ipaddress.ip_network("::/0")}


@dataclass(frozen=True, slots=True)
class RouteObj:
    table: int
    dst: IPNetwork
    dev: str = ""  # "" for unreachable routes
    gateway: IPAddress | None = None
    onlink: bool = False
    unreachable: bool = False

    @property
    def key(self) -> tuple[int, IPNetwork]:
        return (self.table, self.dst)


@dataclass(frozen=True, slots=True)
class RuleObj:
    version: int
    iifname: str
    table: int
    priority: int = PORT_RULE_PRIORITY


@dataclass(frozen=True, slots=True)
class NeighObj:
    dev: str
    address: IPAddress
    mac: str

    @property
    def key(self) -> tuple[str, IPAddress]:
        return (self.dev, self.address)


@dataclass(frozen=True, slots=True)
class FdbObj:
    dev: str
    mac: str
    remote: IPAddress


@dataclass(frozen=True, slots=True)
class VxlanObj:
    name: str
    vni: int
    mac: str
    mtu: int


@dataclass(slots=True)
class HostObjects:
    """Host-side (node netns) objects owned by the agent."""

    routes: dict[tuple[int, IPNetwork], RouteObj] = field(default_factory=dict)
    rules: set[RuleObj] = field(default_factory=set)
    neighbours: dict[tuple[str, IPAddress], NeighObj] = field(default_factory=dict)
    fdb: set[FdbObj] = field(default_factory=set)
    vxlans: dict[str, VxlanObj] = field(default_factory=dict)
    ports: set[str] = field(default_factory=set)  # host-side veth names

    def add_route(self, route: RouteObj) -> None:
        self.routes[route.key] = route

    def add_neighbour(self, neigh: NeighObj) -> None:
        self.neighbours[neigh.key] = neigh

    def merge(self, other: HostObjects) -> None:
        self.routes.update(other.routes)
        self.rules |= other.rules
        self.neighbours.update(other.neighbours)
        self.fdb |= other.fdb
        self.vxlans.update(other.vxlans)
        self.ports |= other.ports

    def forget_port(self, ifname: str) -> None:
        """Drop a port and everything that hangs off its device (the kernel drops routes and neighbours with it)."""
        self.ports.discard(ifname)
        self.routes = {k: r for k, r in self.routes.items() if r.dev != ifname}
        self.neighbours = {k: n for k, n in self.neighbours.items() if n.dev != ifname}
        self.rules = {r for r in self.rules if r.iifname != ifname}


def network_objects(net: NetworkSpec, out: HostObjects) -> None:
    """A network's routing domain: lookups in its table end there (unreachable default), never in main."""
    for version in FAMILIES:
        out.add_route(RouteObj(net.table, DEFAULTS[version], unreachable=True))


def port_objects(port: PortSpec, net: NetworkSpec, out: HostObjects) -> None:
    out.ports.add(port.host_ifname)
    for version in FAMILIES:
        out.rules.add(RuleObj(version, port.host_ifname, net.table))
    for ip in port.ips:
        out.add_route(RouteObj(net.table, host_network(ip.ip), dev=port.host_ifname))
        out.add_neighbour(NeighObj(port.host_ifname, ip.ip, port.pod_mac))


def follow_macs(objects: HostObjects, macs: Mapping[str, str]) -> None:
    """Point the neighbour entries of pod ports at the MAC their pod side has now (`macs`: host veth → MAC), which
    a chained plugin may have changed since multinet chose it (`tuning`): never back to the spec's."""
    for key, neigh in objects.neighbours.items():
        mac = macs.get(neigh.dev)
        if mac and mac != neigh.mac:
            objects.neighbours[key] = NeighObj(neigh.dev, neigh.address, mac)


def tunnel_objects(desired: DesiredNode, net: NetworkSpec, mtu: int, out: HostObjects) -> None:
    """VXLAN for one network: its device, rule, one next hop per peer node and a route per remote pod."""
    dev = vxlan_ifname(net.vni)
    out.vxlans[dev] = VxlanObj(dev, net.vni, vtep_mac(desired.node, net.vni), mtu)
    for version in FAMILIES:
        out.rules.add(RuleObj(version, dev, net.table))
    for peer in desired.peers.values():
        mac = vtep_mac(peer.name, net.vni)
        out.add_neighbour(NeighObj(dev, peer_nexthop(peer.name), mac))
        out.fdb.add(FdbObj(dev, mac, peer.underlay))
    for remote in desired.remotes.values():
        if remote.network != net.name or remote.node not in desired.peers:
            continue
        dst = host_network(remote.address)
        out.add_route(RouteObj(net.table, dst, dev=dev, gateway=peer_nexthop(remote.node), onlink=True))


def host_objects(desired: DesiredNode, tunnel_mtu: int) -> HostObjects:
    out = HostObjects()
    for net in desired.networks.values():
        network_objects(net, out)
        if desired.underlay is not None:
            tunnel_objects(desired, net, tunnel_mtu, out)
    for port in desired.ports.values():
        port_net = desired.networks.get(port.network)
        if port_net is not None:
            port_objects(port, port_net, out)
    return out
