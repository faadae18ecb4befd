"""Builders of VPP binary-API requests: one function per message the driver sends (pure: no I/O).

Field names and types follow the .api definitions of VPP (FDio/vpp): tapv2.api, interface.api, ip.api,
fib_types.api, ip_neighbor.api, plugins/vxlan/vxlan.api and vlib.api. Values are what vpp_papi packs: ints for
enums, bools for `bool`, ipaddress objects for addresses/prefixes, "aa:bb:.." strings for MAC addresses."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...model import HOST_SIDE_MAC, IPAddress
from .plan import Loopback, Route, Tap, Tunnel, Vrf

if TYPE_CHECKING:
    from .actual import ActualTunnel

INVALID_INDEX = 0xFFFFFFFF  # "~0": no interface / let VPP choose

# interface_types.api: enumflag if_status_flags
IF_STATUS_API_FLAG_ADMIN_UP = 1
# fib_types.api: enum fib_path_type, enum fib_path_nh_proto
FIB_API_PATH_TYPE_NORMAL = 0
FIB_API_PATH_TYPE_LOCAL = 1
FIB_API_PATH_TYPE_DROP = 2
FIB_API_PATH_NH_PROTO = {4: 0, 6: 1}  # FIB_API_PATH_NH_PROTO_IP4, FIB_API_PATH_NH_PROTO_IP6
# ip_neighbor.api: enum ip_neighbor_flags
IP_API_NEIGHBOR_FLAG_STATIC = 0x1
IP_API_NEIGHBOR_FLAG_NO_FIB_ENTRY = 0x2
# ip_types.api: enum address_family
ADDRESS_FAMILY = {4: 0, 6: 1}  # ADDRESS_IP4, ADDRESS_IP6
# fib_types.api: fib_path.label_stack is a fixed array of 16 fib_mpls_label; vpp_papi refuses to pack a path
# without all 16 entries.
MPLS_LABEL_STACK = 16
TAP_RING_SIZE = 256  # tapv2.api default; must be a power of two

# vnet/api_errno.h: the return values the driver reacts to
RV_OK = 0
RV_INVALID_SW_IF_INDEX = -2
RV_NO_SUCH_FIB = -3
RV_NO_SUCH_ENTRY = -6
RV_NO_SUCH_NODE = -63
RV_UNEXPECTED_INTF_STATE = -74
RV_TUNNEL_EXIST = -75
RV_ADDRESS_FOUND_FOR_INTERFACE = -114
RV_NETLINK_ERROR = -145


@dataclass(frozen=True, slots=True)
class Call:
    """One request: message name, its fields, what it does (for errors and logs), the retvals meaning success."""

    msg: str
    fields: Mapping[str, object]
    what: str
    ok: frozenset[int] = field(default=frozenset({RV_OK}))


def _family_field(address: IPAddress) -> dict[str, IPAddress]:
    return {"ip4": address} if address.version == 4 else {"ip6": address}


def _labels() -> list[dict[str, int]]:
    return [{"is_uniform": 0, "label": 0, "ttl": 0, "exp": 0} for _ in range(MPLS_LABEL_STACK)]


def _path(version: int, path_type: int, sw_if_index: int, nexthop: IPAddress | None) -> dict[str, object]:
    nh_address = nexthop if nexthop is not None else ipaddress.ip_address("0.0.0.0" if version == 4 else "::")
    return {
        "sw_if_index": sw_if_index,
        "table_id": 0,
        "rpf_id": 0,
        "weight": 1,
        "preference": 0,
        "type": path_type,
        "flags": 0,
        "proto": FIB_API_PATH_NH_PROTO[version],
        "nh": {"address": _family_field(nh_address), "via_label": 0, "obj_id": 0, "classify_table_index": 0},
        "n_labels": 0,
        "label_stack": _labels(),
    }


# ------------------------------------------------------------------------------------------------ tables, routes
def table(vrf: Vrf, *, add: bool) -> Call:
    fam = 6 if vrf.is_ip6 else 4
    return Call(
        "ip_table_add_del",
        {"is_add": add, "table": {"table_id": vrf.table_id, "is_ip6": vrf.is_ip6, "name": vrf.name}},
        f"{'add' if add else 'delete'} IPv{fam} table {vrf.table_id}",
    )


def route(r: Route, sw_if_index: int = INVALID_INDEX, *, add: bool) -> Call:
    """Add (replacing every path VPP has for the API source: is_multipath=false) or delete a whole route."""
    version = r.prefix.version
    paths: list[dict[str, object]] = []
    if add:
        if r.is_drop:
            paths.append(_path(version, FIB_API_PATH_TYPE_DROP, INVALID_INDEX, None))
        else:
            paths.append(_path(version, FIB_API_PATH_TYPE_NORMAL, sw_if_index, r.nexthop))
    body = {"table_id": r.table_id, "stats_index": 0, "prefix": r.prefix, "n_paths": len(paths), "paths": paths}
    # Deleting with no paths and is_multipath=false removes the API-sourced entry (fib_api_route_add_del), and
    # VPP answers 0 even when there was nothing to remove.
    what = f"{'add' if add else 'delete'} route {r.prefix} table {r.table_id}"
    return Call("ip_route_add_del", {"is_add": add, "is_multipath": False, "route": body}, what)


def route_delete(table_id: int, prefix: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Call:
    return route(Route(table_id, prefix), add=False)


def route_lookup(table_id: int, prefix: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Call:
    """The entry for exactly `prefix` (all sources merged); NO_SUCH_ENTRY when there is none."""
    return Call(
        "ip_route_lookup",
        {"table_id": table_id, "exact": 1, "prefix": prefix},
        f"look up {prefix} in table {table_id}",
        frozenset({RV_OK, RV_NO_SUCH_ENTRY}),
    )


def neighbour(sw_if_index: int, address: IPAddress, mac: str, *, add: bool) -> Call:
    # NO_FIB_ENTRY: the driver installs the pod's host route itself; a second (adjacency-sourced) copy would make
    # the route outlive a delete and keep the VRF from converging.
    flags = IP_API_NEIGHBOR_FLAG_STATIC | IP_API_NEIGHBOR_FLAG_NO_FIB_ENTRY
    neigh = {"sw_if_index": sw_if_index, "flags": flags, "mac_address": mac, "ip_address": address}
    what = f"{'add' if add else 'delete'} neighbour {address} on interface {sw_if_index}"
    ok = frozenset({RV_OK}) if add else frozenset({RV_OK, RV_NO_SUCH_ENTRY})
    return Call("ip_neighbor_add_del", {"is_add": add, "neighbor": neigh}, what, ok)


# ------------------------------------------------------------------------------------------------ interfaces
def tag(sw_if_index: int, value: str) -> Call:
    return Call(
        "sw_interface_tag_add_del",
        {"is_add": True, "sw_if_index": sw_if_index, "tag": value},
        f"tag interface {sw_if_index} {value}",
    )


def set_table(sw_if_index: int, table_id: int, *, is_ip6: bool) -> Call:
    # Must come before any address or unnumbered setting: VPP refuses to move an interface that has (or borrows)
    # an address, even into the table it is already in (ip_table_bind: ADDRESS_FOUND_FOR_INTERFACE).
    fam = 6 if is_ip6 else 4
    return Call(
        "sw_interface_set_table",
        {"sw_if_index": sw_if_index, "is_ipv6": is_ip6, "vrf_id": table_id},
        f"put interface {sw_if_index} in IPv{fam} table {table_id}",
    )


def unnumbered(ip_sw_if_index: int, sw_if_index: int, *, add: bool = True) -> Call:
    # The field names are the reverse of what one expects: sw_if_index is the interface that *has* the address.
    # Both must be in the same tables (vnet_sw_interface_update_unnumbered: UNEXPECTED_INTF_STATE otherwise).
    return Call(
        "sw_interface_set_unnumbered",
        {"sw_if_index": ip_sw_if_index, "unnumbered_sw_if_index": sw_if_index, "is_add": add},
        f"{'make' if add else 'unmake'} interface {sw_if_index} unnumbered to {ip_sw_if_index}",
    )


def admin_up(sw_if_index: int) -> Call:
    return Call(
        "sw_interface_set_flags",
        {"sw_if_index": sw_if_index, "flags": IF_STATUS_API_FLAG_ADMIN_UP},
        f"set interface {sw_if_index} up",
    )


def add_address(sw_if_index: int, address: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> Call:
    return Call(
        "sw_interface_add_del_address",
        {"sw_if_index": sw_if_index, "is_add": True, "del_all": False, "prefix": address},
        f"add {address} to interface {sw_if_index}",
    )


def create_loopback(loop: Loopback) -> Call:
    # An all-zero MAC lets VPP pick one; the loopback never sends frames.
    return Call("create_loopback", {"mac_address": "00:00:00:00:00:00"}, f"create loopback for VNI {loop.vni}")


def delete_loopback(sw_if_index: int) -> Call:
    return Call("delete_loopback", {"sw_if_index": sw_if_index}, f"delete loopback {sw_if_index}")


def tap_create(tap: Tap) -> Call:
    """The pod's interface: a TAP whose host end VPP creates directly inside the pod's netns.

    Deliberately not set: host_ip4_gw/host_ip6_gw (VPP adds the default route with only RTA_GATEWAY, which the
    kernel rejects for a link-local gateway on a /32 or without an egress device, and the whole create fails) and
    host_ip6_prefix (VPP adds it without IFA_F_NODAD, so it stays tentative for the DAD time even after a NODAD
    replace). Both are programmed from the pod side (linux pod.py) instead."""
    port = tap.port
    ip4 = next((ip for ip in port.ips if ip.version == 4), None)
    fields: dict[str, object] = {
        "id": INVALID_INDEX,
        "use_random_mac": False,
        "mac_address": HOST_SIDE_MAC,  # VPP's end: the MAC the pod's static gateway neighbour points at
        "num_rx_queues": 1,
        "num_tx_queues": 1,
        "tx_ring_sz": TAP_RING_SIZE,
        "rx_ring_sz": TAP_RING_SIZE,
        "host_mtu_set": True,
        "host_mtu_size": port.mtu,
        "host_mac_addr_set": True,
        "host_mac_addr": port.pod_mac,
        "host_ip4_prefix_set": ip4 is not None,
        "host_ip4_prefix": ip4 if ip4 is not None else ipaddress.IPv4Interface("0.0.0.0/0"),
        "host_ip6_prefix_set": False,
        "host_ip4_gw_set": False,
        "host_ip6_gw_set": False,
        "tap_flags": 0,  # a TAP (L2, with the pod's MAC), not a TUN
        "host_namespace_set": True,
        "host_namespace": port.netns,
        "host_if_name_set": True,
        "host_if_name": port.ifname,
        "host_bridge_set": False,
        "tag": tap.tag,
    }
    return Call("tap_create_v3", fields, f"create tap {port.ifname} in {port.netns}")


def tap_delete(sw_if_index: int) -> Call:
    return Call("tap_delete_v2", {"sw_if_index": sw_if_index}, f"delete tap {sw_if_index}")


def vxlan(tun: Tunnel, decap_next_index: int, *, add: bool) -> Call:
    # v3 takes the UDP ports as given (0 is not "default" there), and is_l3 makes the tunnel a plain L3 interface
    # whose payload is the bare IP packet; decap_next_index is the vxlanN-input -> ipM-input arc (add_node_next).
    fields = {
        "is_add": add,
        "instance": INVALID_INDEX,
        "src_address": tun.src,
        "dst_address": tun.dst,
        "src_port": tun.udp_port,
        "dst_port": tun.udp_port,
        "mcast_sw_if_index": INVALID_INDEX,
        "encap_vrf_id": 0,  # the underlay lives in VPP's default table
        "decap_next_index": decap_next_index,
        "vni": tun.vni,
        "is_l3": True,
    }
    what = f"{'create' if add else 'delete'} VXLAN VNI {tun.vni} IPv{tun.inner} to {tun.dst}"
    return Call("vxlan_add_del_tunnel_v3", fields, what)


def vxlan_delete(have: ActualTunnel) -> Call:
    """Delete a tunnel as VPP lists it: VPP finds it by (src, dst, src_port, encap VRF, VNI)."""
    fields = {
        "is_add": False,
        "instance": INVALID_INDEX,
        "src_address": have.src,
        "dst_address": have.dst,
        "src_port": have.src_port,
        "dst_port": have.dst_port,
        "mcast_sw_if_index": INVALID_INDEX,
        "encap_vrf_id": have.encap_vrf_id,
        "decap_next_index": have.decap_next_index,
        "vni": have.vni,
        "is_l3": True,
    }
    return Call("vxlan_add_del_tunnel_v3", fields, f"delete VXLAN VNI {have.vni} to {have.dst}")


def add_node_next(node: str, next_node: str) -> Call:
    return Call("add_node_next", {"node_name": node, "next_name": next_node}, f"graph arc {node} -> {next_node}")


def decap_arc(underlay: int, inner: int) -> tuple[str, str]:
    return (f"vxlan{underlay}-input", f"ip{inner}-input")


# ------------------------------------------------------------------------------------------------ dumps
def interfaces_dump(sw_if_index: int = INVALID_INDEX) -> Call:
    # sw_if_index 0 means "all" as well (interface.api), which never matters here: local0 is never ours.
    return Call("sw_interface_dump", {"sw_if_index": sw_if_index, "name_filter_valid": False}, "dump interfaces")


def tables_dump() -> Call:
    return Call("ip_table_dump", {}, "dump IP tables")


def routes_dump(table_id: int, *, is_ip6: bool) -> Call:
    return Call(
        "ip_route_dump",
        {"table": {"table_id": table_id, "is_ip6": is_ip6, "name": ""}},
        f"dump routes of table {table_id}",
    )


def tunnels_dump() -> Call:
    return Call("vxlan_tunnel_v2_dump", {"sw_if_index": INVALID_INDEX}, "dump VXLAN tunnels")


def neighbours_dump(version: int, sw_if_index: int = INVALID_INDEX) -> Call:
    return Call(
        "ip_neighbor_dump",
        {"sw_if_index": sw_if_index, "af": ADDRESS_FAMILY[version]},
        f"dump IPv{version} neighbours",
    )


def unnumbered_dump() -> Call:
    return Call("ip_unnumbered_dump", {"sw_if_index": INVALID_INDEX}, "dump unnumbered interfaces")


def addresses_dump(sw_if_index: int, *, is_ip6: bool) -> Call:
    return Call("ip_address_dump", {"sw_if_index": sw_if_index, "is_ipv6": is_ip6}, f"dump addresses of {sw_if_index}")


def get_table(sw_if_index: int, *, is_ip6: bool) -> Call:
    return Call(
        "sw_interface_get_table",
        {"sw_if_index": sw_if_index, "is_ipv6": is_ip6},
        f"get table of interface {sw_if_index}",
    )
