"""The agent's desired state, independent of any dataplane: networks, local pod ports, remote endpoints.

Pure data and pure derivations (names, MACs, tables) so both drivers and the tests agree on them."""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

# Every pod port's gateway is link-local and answered by a static neighbour entry: pods never ARP for it.
GATEWAY_V4 = ipaddress.IPv4Address("169.254.1.1")
GATEWAY_V6 = ipaddress.IPv6Address("fe80::1")
HOST_SIDE_MAC = "ee:ee:ee:ee:ee:ee"

# Per-network routing tables live in [TABLE_BASE, TABLE_BASE + 2^24): the table id is the VNI plus a base, so a
# restarted agent recognises its tables and two networks can never share one.
TABLE_BASE = 0x10000000
VXLAN_PORT = 4789
VXLAN_OVERHEAD_V4 = 50
VXLAN_OVERHEAD_V6 = 70


def vxlan_overhead(underlay_v6: bool) -> int:
    """Outer IP + UDP + VXLAN + inner Ethernet: an IPv6 underlay's header is 20 bytes longer."""
    return VXLAN_OVERHEAD_V6 if underlay_v6 else VXLAN_OVERHEAD_V4


HOST_IFNAME_PREFIX = "mn"
VXLAN_IFNAME_PREFIX = "mnvx"
OWNER_ALIAS_PREFIX = "multinet:"


def host_network(address: IPAddress) -> IPNetwork:
    """address/32 (or /128), built from the integer: no string round trip (this runs per remote pod)."""
    if address.version == 4:
        return ipaddress.IPv4Network((int(address), 32))
    return ipaddress.IPv6Network((int(address), 128))


def table_for_vni(vni: int) -> int:
    return TABLE_BASE + vni


def gateway_for(address: IPAddress) -> IPAddress:
    return GATEWAY_V4 if address.version == 4 else GATEWAY_V6


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\0".join(parts).encode()).digest()


def host_ifname(network: str, container_id: str, ifname: str) -> str:
    """Deterministic host-side name (13 chars): the same attachment always maps to the same link."""
    return HOST_IFNAME_PREFIX + _digest(network, container_id, ifname).hex()[:11]


def pod_mac(network: str, container_id: str, ifname: str) -> str:
    """Deterministic locally administered unicast MAC for the pod side."""
    tail = _digest("mac", network, container_id, ifname)[:5]
    return ":".join(f"{b:02x}" for b in (0x02, *tail))


def vxlan_ifname(vni: int) -> str:
    return f"{VXLAN_IFNAME_PREFIX}{vni}"


@functools.lru_cache(maxsize=4096)
def peer_nexthop(node: str) -> ipaddress.IPv6Address:
    """Link-local next hop standing for a peer node on every VXLAN device (IPv4 routes use it via RTA_VIA)."""
    return ipaddress.IPv6Address(b"\xfe\x80" + b"\0" * 6 + _digest("nexthop", node)[:8])


@functools.lru_cache(maxsize=4096)
def vtep_mac(node: str, vni: int) -> str:
    tail = _digest("vtep", node, str(vni))[:5]
    return ":".join(f"{b:02x}" for b in (0x02, *tail))


def port_alias(network: str, container_id: str, ifname: str) -> str:
    # IFLA_IFALIAS holds up to 255 bytes: enough for the key that identifies the attachment.
    return f"{OWNER_ALIAS_PREFIX}{network}/{container_id}/{ifname}"[:255]


@dataclass(frozen=True, slots=True)
class NetworkSpec:
    name: str
    vni: int
    mtu: int
    ranges: tuple[IPNetwork, ...]

    @property
    def table(self) -> int:
        return table_for_vni(self.vni)


@dataclass(frozen=True, slots=True)
class PortRoute:
    dst: IPNetwork
    gateway: IPAddress | None = None  # None: the port's link-local gateway


@dataclass(frozen=True, slots=True)
class PortSpec:
    """One pod interface on this node."""

    network: str
    container_id: str
    ifname: str
    netns: str
    ips: tuple[IPInterface, ...]
    routes: tuple[PortRoute, ...]
    mtu: int
    mac: str = ""  # "" = derived

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.network, self.container_id, self.ifname)

    @property
    def host_ifname(self) -> str:
        return host_ifname(*self.key)

    @property
    def pod_mac(self) -> str:
        return self.mac or pod_mac(*self.key)

    @property
    def alias(self) -> str:
        return port_alias(*self.key)


@dataclass(frozen=True, slots=True)
class RemoteEndpoint:
    """A pod address of `network` that lives on another node."""

    network: str
    address: IPAddress
    node: str


@dataclass(frozen=True, slots=True)
class PeerNode:
    name: str
    underlay: IPAddress


@dataclass(slots=True)
class DesiredNode:
    """Everything one node's dataplane should hold."""

    node: str
    underlay: IPAddress | None = None
    networks: dict[str, NetworkSpec] = field(default_factory=dict)
    ports: dict[tuple[str, str, str], PortSpec] = field(default_factory=dict)
    remotes: dict[tuple[str, IPAddress], RemoteEndpoint] = field(default_factory=dict)
    peers: dict[str, PeerNode] = field(default_factory=dict)
