"""What VPP holds, read back through dumps and turned into typed records.

vpp_papi returns namedtuples of already-converted values (IPv4Network, IPv6Address, MACAddress, IntFlag); every
field is converted once more here (int(), str(), ipaddress) so the rest of the driver is typed."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from ...model import TABLE_BASE, IPAddress, IPNetwork
from . import calls
from .api import VppApi, dump, run
from .calls import FIB_API_PATH_NH_PROTO, IF_STATUS_API_FLAG_ADMIN_UP, INVALID_INDEX

TABLE_SPAN = 1 << 24  # the VRFs this agent may own: TABLE_BASE + VNI (model.table_for_vni)


def owned_table(table_id: int) -> bool:
    return TABLE_BASE <= table_id < TABLE_BASE + TABLE_SPAN


@dataclass(frozen=True, slots=True)
class Interface:
    sw_if_index: int
    name: str
    tag: str
    up: bool
    mtu: int  # L3 MTU


@dataclass(frozen=True, slots=True)
class Path:
    sw_if_index: int
    kind: int  # fib_path_type
    nexthop: IPAddress | None


@dataclass(frozen=True, slots=True)
class ActualRoute:
    table_id: int
    prefix: IPNetwork
    paths: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class ActualTunnel:
    sw_if_index: int
    src: IPAddress
    dst: IPAddress
    src_port: int
    dst_port: int
    vni: int
    decap_next_index: int
    encap_vrf_id: int


@dataclass(frozen=True, slots=True)
class ActualNeighbour:
    sw_if_index: int
    address: IPAddress
    mac: str
    static: bool


@dataclass(slots=True)
class Snapshot:
    interfaces: dict[int, Interface] = field(default_factory=dict)
    tables: set[tuple[int, bool]] = field(default_factory=set)
    unnumbered: dict[int, int] = field(default_factory=dict)  # interface -> the one whose address it borrows

    @property
    def by_tag(self) -> dict[str, Interface]:
        return {i.tag: i for i in self.interfaces.values() if i.tag}


def _mac(value: Any) -> str:
    return str(value).lower()


def interfaces(api: VppApi, sw_if_index: int = INVALID_INDEX) -> dict[int, Interface]:
    out: dict[int, Interface] = {}
    for d in dump(api, calls.interfaces_dump(sw_if_index)):
        up = bool(int(d.flags) & IF_STATUS_API_FLAG_ADMIN_UP)
        sw = int(d.sw_if_index)
        mtu = int(d.mtu[0]) or int(d.link_mtu)  # mtu[0] is the L3 MTU (vl_api_mtu_proto_t MTU_PROTO_API_L3)
        out[sw] = Interface(sw, str(d.interface_name), str(d.tag), up, mtu)
    return out


def tables(api: VppApi) -> set[tuple[int, bool]]:
    return {(int(d.table.table_id), bool(d.table.is_ip6)) for d in dump(api, calls.tables_dump())}


def _nexthop(path: Any) -> IPAddress | None:
    proto = int(path.proto)
    if proto == FIB_API_PATH_NH_PROTO[4]:
        addr: IPAddress = ipaddress.IPv4Address(path.nh.address.ip4)
    elif proto == FIB_API_PATH_NH_PROTO[6]:
        addr = ipaddress.IPv6Address(path.nh.address.ip6)
    else:
        return None
    return None if addr.is_unspecified else addr


def _route(r: Any) -> ActualRoute:
    paths = tuple(Path(int(p.sw_if_index), int(p.type), _nexthop(p)) for p in r.paths)
    return ActualRoute(int(r.table_id), ipaddress.ip_network(r.prefix), paths)


def lookup(api: VppApi, table_id: int, prefix: IPNetwork) -> ActualRoute | None:
    reply = run(api, calls.route_lookup(table_id, prefix))
    return None if int(reply.retval) != calls.RV_OK else _route(reply.route)


def routes(api: VppApi, table_id: int, *, is_ip6: bool) -> list[ActualRoute]:
    return [_route(d.route) for d in dump(api, calls.routes_dump(table_id, is_ip6=is_ip6))]


def tunnels(api: VppApi) -> dict[int, ActualTunnel]:
    out: dict[int, ActualTunnel] = {}
    for d in dump(api, calls.tunnels_dump()):
        sw = int(d.sw_if_index)
        out[sw] = ActualTunnel(
            sw,
            ipaddress.ip_address(d.src_address),
            ipaddress.ip_address(d.dst_address),
            int(d.src_port),
            int(d.dst_port),
            int(d.vni),
            int(d.decap_next_index),
            int(d.encap_vrf_id),
        )
    return out


def neighbours(api: VppApi, sw_if_index: int = INVALID_INDEX) -> list[ActualNeighbour]:
    out = []
    for version in (4, 6):
        for d in dump(api, calls.neighbours_dump(version, sw_if_index)):
            n = d.neighbor
            static = bool(int(n.flags) & calls.IP_API_NEIGHBOR_FLAG_STATIC)
            out.append(
                ActualNeighbour(int(n.sw_if_index), ipaddress.ip_address(n.ip_address), _mac(n.mac_address), static)
            )
    return out


def unnumbered(api: VppApi) -> dict[int, int]:
    return {int(d.sw_if_index): int(d.ip_sw_if_index) for d in dump(api, calls.unnumbered_dump())}


def interface_table(api: VppApi, sw_if_index: int, *, is_ip6: bool) -> int:
    return int(run(api, calls.get_table(sw_if_index, is_ip6=is_ip6)).vrf_id)


def addresses(api: VppApi, sw_if_index: int, *, is_ip6: bool) -> set[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    return {ipaddress.ip_interface(d.prefix) for d in dump(api, calls.addresses_dump(sw_if_index, is_ip6=is_ip6))}


def snapshot(api: VppApi) -> Snapshot:
    """Interfaces, tables and unnumbered bindings: what every operation needs (tunnels are read by reconcile)."""
    return Snapshot(interfaces=interfaces(api), tables=tables(api), unnumbered=unnumbered(api))


def is_ours(route: ActualRoute, owned_ifaces: set[int], existing: set[int]) -> bool:
    """A route this agent manages in one of its VRFs: every path goes through one of its interfaces, or through an
    interface that no longer exists (VPP keeps such paths, and would revive them when it reuses the index).

    VPP's own entries stay untouched: the drops it installs (224/4, 240/4, 255.255.255.255/32...), local/receive
    routes of the loopback's address, and special entries such as fe80::/10 (a normal path through ~0)."""
    if not route.paths:
        return False
    for path in route.paths:
        if path.kind != calls.FIB_API_PATH_TYPE_NORMAL or path.sw_if_index == INVALID_INDEX:
            return False
        if path.sw_if_index in existing and path.sw_if_index not in owned_ifaces:
            return False
    return True


def is_drop(route: ActualRoute) -> bool:
    return len(route.paths) == 1 and route.paths[0].kind == calls.FIB_API_PATH_TYPE_DROP
