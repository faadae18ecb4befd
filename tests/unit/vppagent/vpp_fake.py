"""A stateful fake of the VPP binary API messages the vpp driver uses (no VPP exists on the test machines).

Every request goes through three gates before the fake acts on it:
1. the message and each field must be in API below, transcribed from VPP's .api files (a misspelt field fails);
2. each value must have the Python type vpp_papi packs for that .api type (papi itself packs "yes" into a bool);
3. vpp_papi's own serializer packs the request and unpacks it again, as VPP would receive it (string lengths,
   fixed arrays such as fib_path.label_stack, union arms...); the fake acts on the unpacked message.
Replies and details go the other way: built from the same table, packed and unpacked by papi, so the driver gets
the namedtuples of real papi values (IPv4Network, MACAddress, IntFlag...).

The state model follows VPP's handlers where the driver depends on them (sources cited inline): retvals from
vnet/api_errno.h, table binding refused once an interface has/borrows an address, unnumbered only within one
table, tunnels keyed by (src, dst, src_port, encap VRF, VNI), routes kept through deleted interfaces, VPP's own
entries in every new table, and tap_create_v3 failing the way the kernel fails VPP's gateway route."""

from __future__ import annotations

import ipaddress
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vpp_papi.vpp_papi import VPPApiJSONFiles

from services.vppagent.drivers.vpp.podside import LinkState
from services.vppagent.errors import DataplaneError
from services.vppagent.model import PortSpec

Field = tuple[Any, ...]
NO_INDEX = 0xFFFFFFFF

# ------------------------------------------------------------------------------------------------------------------
# The API table: types and messages, in vpp_papi's .api.json notation (type, name[, length[, length field]][, opts]).
# ------------------------------------------------------------------------------------------------------------------
ALIASES: dict[str, dict[str, Any]] = {
    # src/vnet/ip/ip_types.api
    "ip4_address": {"type": "u8", "length": 4},
    "ip6_address": {"type": "u8", "length": 16},
    "address_with_prefix": {"type": "vl_api_prefix_t"},
    "ip4_address_with_prefix": {"type": "vl_api_ip4_prefix_t"},
    "ip6_address_with_prefix": {"type": "vl_api_ip6_prefix_t"},
    # src/vnet/ethernet/ethernet_types.api
    "mac_address": {"type": "u8", "length": 6},
    # src/vnet/interface_types.api
    "interface_index": {"type": "u32"},
}
ENUMS: dict[str, list[tuple[str, int]]] = {
    # src/vnet/ip/ip_types.api (enum address_family : u8)
    "address_family": [("ADDRESS_IP4", 0), ("ADDRESS_IP6", 1)],
    # src/vnet/interface_types.api
    "if_status_flags": [("IF_STATUS_API_FLAG_ADMIN_UP", 1), ("IF_STATUS_API_FLAG_LINK_UP", 2)],
    "if_type": [("IF_API_TYPE_HARDWARE", 0), ("IF_API_TYPE_SUB", 1), ("IF_API_TYPE_P2P", 2), ("IF_API_TYPE_PIPE", 3)],
    "link_duplex": [("LINK_DUPLEX_API_UNKNOWN", 0), ("LINK_DUPLEX_API_HALF", 1), ("LINK_DUPLEX_API_FULL", 2)],
    "sub_if_flags": [("SUB_IF_API_FLAG_NO_TAGS", 1), ("SUB_IF_API_FLAG_ONE_TAG", 2)],
    # src/vnet/devices/tap/tapv2.api (tapv2 4.0.0)
    "tap_flags": [
        ("TAP_API_FLAG_GSO", 1),
        ("TAP_API_FLAG_CSUM_OFFLOAD", 2),
        ("TAP_API_FLAG_PERSIST", 4),
        ("TAP_API_FLAG_ATTACH", 8),
        ("TAP_API_FLAG_TUN", 16),
        ("TAP_API_FLAG_GRO_COALESCE", 32),
        ("TAP_API_FLAG_PACKED", 64),
        ("TAP_API_FLAG_IN_ORDER", 128),
    ],
    # src/vnet/fib/fib_types.api
    "fib_path_nh_proto": [
        ("FIB_API_PATH_NH_PROTO_IP4", 0),
        ("FIB_API_PATH_NH_PROTO_IP6", 1),
        ("FIB_API_PATH_NH_PROTO_MPLS", 2),
        ("FIB_API_PATH_NH_PROTO_ETHERNET", 3),
        ("FIB_API_PATH_NH_PROTO_BIER", 4),
    ],
    "fib_path_flags": [
        ("FIB_API_PATH_FLAG_NONE", 0),
        ("FIB_API_PATH_FLAG_RESOLVE_VIA_ATTACHED", 1),
        ("FIB_API_PATH_FLAG_RESOLVE_VIA_HOST", 2),
        ("FIB_API_PATH_FLAG_POP_PW_CW", 4),
    ],
    "fib_path_type": [
        ("FIB_API_PATH_TYPE_NORMAL", 0),
        ("FIB_API_PATH_TYPE_LOCAL", 1),
        ("FIB_API_PATH_TYPE_DROP", 2),
        ("FIB_API_PATH_TYPE_UDP_ENCAP", 3),
        ("FIB_API_PATH_TYPE_BIER_IMP", 4),
        ("FIB_API_PATH_TYPE_ICMP_UNREACH", 5),
        ("FIB_API_PATH_TYPE_ICMP_PROHIBIT", 6),
        ("FIB_API_PATH_TYPE_SOURCE_LOOKUP", 7),
        ("FIB_API_PATH_TYPE_DVR", 8),
        ("FIB_API_PATH_TYPE_INTERFACE_RX", 9),
        ("FIB_API_PATH_TYPE_CLASSIFY", 10),
    ],
    # src/vnet/ip-neighbor/ip_neighbor.api (enum ip_neighbor_flags : u8)
    "ip_neighbor_flags": [
        ("IP_API_NEIGHBOR_FLAG_NONE", 0),
        ("IP_API_NEIGHBOR_FLAG_STATIC", 1),
        ("IP_API_NEIGHBOR_FLAG_NO_FIB_ENTRY", 2),
    ],
}
ENUM_WIDTH = {"address_family": "u8", "ip_neighbor_flags": "u8"}  # the others are u32
FLAG_ENUMS = {"if_status_flags", "sub_if_flags", "tap_flags", "fib_path_flags", "ip_neighbor_flags"}
UNIONS: dict[str, list[Field]] = {
    "address_union": [("vl_api_ip4_address_t", "ip4"), ("vl_api_ip6_address_t", "ip6")],  # ip_types.api
}
TYPES: dict[str, list[Field]] = {
    # src/vnet/ip/ip_types.api
    "address": [("vl_api_address_family_t", "af"), ("vl_api_address_union_t", "un")],
    "prefix": [("vl_api_address_t", "address"), ("u8", "len")],
    "ip4_prefix": [("vl_api_ip4_address_t", "address"), ("u8", "len")],
    "ip6_prefix": [("vl_api_ip6_address_t", "address"), ("u8", "len")],
    # src/vnet/fib/fib_types.api
    "fib_mpls_label": [("u8", "is_uniform"), ("u32", "label"), ("u8", "ttl"), ("u8", "exp")],
    "fib_path_nh": [
        ("vl_api_address_union_t", "address"),
        ("u32", "via_label"),
        ("u32", "obj_id"),
        ("u32", "classify_table_index"),
    ],
    "fib_path": [
        ("u32", "sw_if_index"),
        ("u32", "table_id"),
        ("u32", "rpf_id"),
        ("u8", "weight"),
        ("u8", "preference"),
        ("vl_api_fib_path_type_t", "type"),
        ("vl_api_fib_path_flags_t", "flags"),
        ("vl_api_fib_path_nh_proto_t", "proto"),
        ("vl_api_fib_path_nh_t", "nh"),
        ("u8", "n_labels"),
        ("vl_api_fib_mpls_label_t", "label_stack", 16),
    ],
    # src/vnet/ip/ip.api
    "ip_table": [("u32", "table_id"), ("bool", "is_ip6"), ("string", "name", 64)],
    "ip_route": [
        ("u32", "table_id"),
        ("u32", "stats_index"),
        ("vl_api_prefix_t", "prefix"),
        ("u8", "n_paths"),
        ("vl_api_fib_path_t", "paths", 0, "n_paths"),
    ],
    # src/vnet/ip-neighbor/ip_neighbor.api
    "ip_neighbor": [
        ("vl_api_interface_index_t", "sw_if_index"),
        ("vl_api_ip_neighbor_flags_t", "flags"),
        ("vl_api_mac_address_t", "mac_address"),
        ("vl_api_address_t", "ip_address"),
    ],
}
RETVAL: list[Field] = [("i32", "retval")]
SW: Field = ("vl_api_interface_index_t", "sw_if_index")
MESSAGES: dict[str, list[Field]] = {
    # --- src/vnet/devices/tap/tapv2.api (tapv2 4.0.0; field list as in projectcalico/vpp-dataplane
    #     vpplink/generated/bindings/tapv2/tapv2.ba.go, generated from that .api)
    "tap_create_v3": [
        ("u32", "id", {"default": NO_INDEX}),
        ("bool", "use_random_mac", {"default": True}),
        ("vl_api_mac_address_t", "mac_address"),
        ("u16", "num_rx_queues", {"default": 1}),
        ("u16", "num_tx_queues", {"default": 1}),
        ("u16", "tx_ring_sz", {"default": 256}),
        ("u16", "rx_ring_sz", {"default": 256}),
        ("bool", "host_mtu_set"),
        ("u32", "host_mtu_size"),
        ("bool", "host_mac_addr_set"),
        ("vl_api_mac_address_t", "host_mac_addr"),
        ("bool", "host_ip4_prefix_set"),
        ("vl_api_ip4_address_with_prefix_t", "host_ip4_prefix"),
        ("bool", "host_ip6_prefix_set"),
        ("vl_api_ip6_address_with_prefix_t", "host_ip6_prefix"),
        ("bool", "host_ip4_gw_set"),
        ("vl_api_ip4_address_t", "host_ip4_gw"),
        ("bool", "host_ip6_gw_set"),
        ("vl_api_ip6_address_t", "host_ip6_gw"),
        ("vl_api_tap_flags_t", "tap_flags"),
        ("bool", "host_namespace_set"),
        ("string", "host_namespace", 64),
        ("bool", "host_if_name_set"),
        ("string", "host_if_name", 64),
        ("bool", "host_bridge_set"),
        ("string", "host_bridge", 64),
        ("string", "tag", 0),
    ],
    "tap_create_v3_reply": [*RETVAL, SW],
    "tap_delete_v2": [SW],
    "tap_delete_v2_reply": RETVAL,
    # --- src/vnet/interface.api
    "sw_interface_set_flags": [SW, ("vl_api_if_status_flags_t", "flags")],
    "sw_interface_set_flags_reply": RETVAL,
    "sw_interface_dump": [
        ("vl_api_interface_index_t", "sw_if_index", {"default": NO_INDEX}),
        ("bool", "name_filter_valid"),
        ("string", "name_filter", 0),
    ],
    "sw_interface_details": [
        SW,
        ("u32", "sup_sw_if_index"),
        ("vl_api_mac_address_t", "l2_address"),
        ("vl_api_if_status_flags_t", "flags"),
        ("vl_api_if_type_t", "type"),
        ("vl_api_link_duplex_t", "link_duplex"),
        ("u32", "link_speed"),
        ("u16", "link_mtu"),
        ("u32", "mtu", 4),
        ("u32", "sub_id"),
        ("u8", "sub_number_of_tags"),
        ("u16", "sub_outer_vlan_id"),
        ("u16", "sub_inner_vlan_id"),
        ("vl_api_sub_if_flags_t", "sub_if_flags"),
        ("u32", "vtr_op"),
        ("u32", "vtr_push_dot1q"),
        ("u32", "vtr_tag1"),
        ("u32", "vtr_tag2"),
        ("u16", "outer_tag"),
        ("vl_api_mac_address_t", "b_dmac"),
        ("vl_api_mac_address_t", "b_smac"),
        ("u16", "b_vlanid"),
        ("u32", "i_sid"),
        ("string", "interface_name", 64),
        ("string", "interface_dev_type", 64),
        ("string", "tag", 64),
    ],
    "sw_interface_add_del_address": [
        SW,
        ("bool", "is_add"),
        ("bool", "del_all"),
        ("vl_api_address_with_prefix_t", "prefix"),
    ],
    "sw_interface_add_del_address_reply": RETVAL,
    "sw_interface_set_table": [SW, ("bool", "is_ipv6"), ("u32", "vrf_id")],
    "sw_interface_set_table_reply": RETVAL,
    "sw_interface_get_table": [SW, ("bool", "is_ipv6")],
    "sw_interface_get_table_reply": [*RETVAL, ("u32", "vrf_id")],
    "sw_interface_set_unnumbered": [SW, ("vl_api_interface_index_t", "unnumbered_sw_if_index"), ("bool", "is_add")],
    "sw_interface_set_unnumbered_reply": RETVAL,
    "sw_interface_tag_add_del": [("bool", "is_add"), SW, ("string", "tag", 64)],
    "sw_interface_tag_add_del_reply": RETVAL,
    "create_loopback": [("vl_api_mac_address_t", "mac_address")],
    "create_loopback_reply": [*RETVAL, SW],
    "delete_loopback": [SW],
    "delete_loopback_reply": RETVAL,
    # --- src/vnet/ip/ip.api
    "ip_table_add_del": [("bool", "is_add", {"default": True}), ("vl_api_ip_table_t", "table")],
    "ip_table_add_del_reply": RETVAL,
    "ip_table_dump": [],
    "ip_table_details": [("vl_api_ip_table_t", "table")],
    "ip_route_add_del": [
        ("bool", "is_add", {"default": True}),
        ("bool", "is_multipath"),
        ("vl_api_ip_route_t", "route"),
    ],
    "ip_route_add_del_reply": [*RETVAL, ("u32", "stats_index")],
    "ip_route_dump": [("vl_api_ip_table_t", "table")],
    "ip_route_details": [("vl_api_ip_route_t", "route")],
    "ip_route_lookup": [("u32", "table_id"), ("u8", "exact"), ("vl_api_prefix_t", "prefix")],
    "ip_route_lookup_reply": [*RETVAL, ("vl_api_ip_route_t", "route")],
    "ip_address_dump": [SW, ("bool", "is_ipv6")],
    "ip_address_details": [SW, ("vl_api_address_with_prefix_t", "prefix")],
    "ip_unnumbered_dump": [("vl_api_interface_index_t", "sw_if_index", {"default": NO_INDEX})],
    "ip_unnumbered_details": [SW, ("vl_api_interface_index_t", "ip_sw_if_index")],
    # --- src/vnet/ip-neighbor/ip_neighbor.api
    "ip_neighbor_add_del": [("bool", "is_add"), ("vl_api_ip_neighbor_t", "neighbor")],
    "ip_neighbor_add_del_reply": [*RETVAL, ("u32", "stats_index")],
    "ip_neighbor_dump": [
        ("vl_api_interface_index_t", "sw_if_index", {"default": NO_INDEX}),
        ("vl_api_address_family_t", "af"),
    ],
    "ip_neighbor_details": [("f64", "age"), ("vl_api_ip_neighbor_t", "neighbor")],
    # --- src/plugins/vxlan/vxlan.api (vxlan 2.1.0)
    "vxlan_add_del_tunnel_v3": [
        ("bool", "is_add", {"default": True}),
        ("u32", "instance", {"default": NO_INDEX}),
        ("vl_api_address_t", "src_address"),
        ("vl_api_address_t", "dst_address"),
        ("u16", "src_port"),
        ("u16", "dst_port"),
        ("vl_api_interface_index_t", "mcast_sw_if_index"),
        ("u32", "encap_vrf_id"),
        ("u32", "decap_next_index"),
        ("u32", "vni"),
        ("bool", "is_l3", {"default": False}),
    ],
    "vxlan_add_del_tunnel_v3_reply": [*RETVAL, SW],
    "vxlan_tunnel_v2_dump": [SW],
    "vxlan_tunnel_v2_details": [
        SW,
        ("u32", "instance"),
        ("vl_api_address_t", "src_address"),
        ("vl_api_address_t", "dst_address"),
        ("u16", "src_port"),
        ("u16", "dst_port"),
        ("vl_api_interface_index_t", "mcast_sw_if_index"),
        ("u32", "encap_vrf_id"),
        ("u32", "decap_next_index"),
        ("u32", "vni"),
    ],
    # --- src/vlibmemory/vlib.api (vlib 1.0.0, as in projectcalico/vpp-dataplane .../bindings/vlib/vlib.ba.go)
    "add_node_next": [("string", "node_name", 64), ("string", "next_name", 64)],
    "add_node_next_reply": [*RETVAL, ("u32", "next_index")],
}
DUMPS = {
    "sw_interface_dump": "sw_interface_details",
    "ip_table_dump": "ip_table_details",
    "ip_route_dump": "ip_route_details",
    "ip_address_dump": "ip_address_details",
    "ip_unnumbered_dump": "ip_unnumbered_details",
    "ip_neighbor_dump": "ip_neighbor_details",
    "vxlan_tunnel_v2_dump": "vxlan_tunnel_v2_details",
}
READS = {*DUMPS, "sw_interface_get_table", "ip_route_lookup"}

# vnet/api_errno.h
RV_INVALID_SW_IF_INDEX = -2
RV_NO_SUCH_FIB = -3
RV_NO_SUCH_ENTRY = -6
RV_INVALID_VALUE = -7
RV_NO_PATHS_IN_ROUTE = -52
RV_NO_MATCHING_INTERFACE = -54
RV_NO_SUCH_NODE = -63
RV_NO_SUCH_NODE2 = -64
RV_UNEXPECTED_INTF_STATE = -74
RV_TUNNEL_EXIST = -75
RV_INVALID_DECAP_NEXT = -76
RV_SAME_SRC_DST = -82
RV_ADDRESS_FOUND_FOR_INTERFACE = -114
RV_DUPLICATE_IF_ADDRESS = -127
RV_NETLINK_ERROR = -145


def _papi_json() -> str:
    def fields(fs: list[Field]) -> list[list[Any]]:
        return [list(f) for f in fs]

    messages = []
    for name, fs in MESSAGES.items():
        is_request = not name.endswith(("_reply", "_details"))
        header: list[list[Any]] = [["u16", "_vl_msg_id"]]
        header += [["u32", "client_index"], ["u32", "context"]] if is_request else [["u32", "context"]]
        messages.append([name, *header, *fields(fs), {"crc": "0x00000000"}])
    enums: list[list[Any]] = []
    enumflags: list[list[Any]] = []
    for name, values in ENUMS.items():
        entry = [name, *[list(v) for v in values], {"enumtype": ENUM_WIDTH.get(name, "u32")}]
        (enumflags if name in FLAG_ENUMS else enums).append(entry)
    api = {
        "types": [[name, *fields(fs)] for name, fs in TYPES.items()],
        "unions": [[name, *fields(fs)] for name, fs in UNIONS.items()],
        "enums": enums,
        "enumflags": enumflags,
        "aliases": ALIASES,
        "messages": messages,
        "services": {},
        "options": {},
        "vl_api_version": "0x0",
    }
    return json.dumps(api)


PAPI, _ = VPPApiJSONFiles.process_json_str(_papi_json())

# ------------------------------------------------------------------------------------------------------------------
# Gate 2: the Python value vpp_papi expects for each .api type.
# ------------------------------------------------------------------------------------------------------------------
_INT_RANGE = {"u8": 0xFF, "u16": 0xFFFF, "u32": 0xFFFFFFFF, "u64": 2**64 - 1}
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_LEAF_TYPES: dict[str, tuple[type, ...]] = {
    "vl_api_ip4_address_t": (ipaddress.IPv4Address,),
    "vl_api_ip6_address_t": (ipaddress.IPv6Address,),
    "vl_api_address_t": (ipaddress.IPv4Address, ipaddress.IPv6Address),
    "vl_api_prefix_t": (ipaddress.IPv4Network, ipaddress.IPv6Network),
    "vl_api_address_with_prefix_t": (ipaddress.IPv4Interface, ipaddress.IPv6Interface),
    "vl_api_ip4_address_with_prefix_t": (ipaddress.IPv4Interface,),
    "vl_api_ip6_address_with_prefix_t": (ipaddress.IPv6Interface,),
}


class ApiMisuse(AssertionError):
    """The driver sent something the real API would reject or misread."""


def _short(t: str) -> str:
    return t.removeprefix("vl_api_").removesuffix("_t")


def check_value(where: str, ftype: str, value: Any, length: int | None = None) -> None:
    if ftype == "string":
        if not isinstance(value, str):
            raise ApiMisuse(f"{where}: string expected, got {value!r}")
        if length and len(value.encode()) > length - 1:
            raise ApiMisuse(f"{where}: {len(value.encode())} bytes do not fit string[{length}] with its NUL")
        return
    if length is not None:  # a fixed array or a variable-length list
        if not isinstance(value, list):
            raise ApiMisuse(f"{where}: list expected, got {value!r}")
        if length and len(value) != length:
            raise ApiMisuse(f"{where}: {length} elements expected, got {len(value)}")
        for i, element in enumerate(value):
            check_value(f"{where}[{i}]", ftype, element)
        return
    if ftype == "bool":
        if not isinstance(value, bool):
            raise ApiMisuse(f"{where}: bool expected, got {value!r}")
        return
    if ftype in _INT_RANGE or ftype == "i32":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ApiMisuse(f"{where}: integer expected, got {value!r}")
        low, high = (-(2**31), 2**31 - 1) if ftype == "i32" else (0, _INT_RANGE[ftype])
        if not low <= value <= high:
            raise ApiMisuse(f"{where}: {value} out of range for {ftype}")
        return
    if ftype == "f64":
        if not isinstance(value, float):
            raise ApiMisuse(f"{where}: float expected, got {value!r}")
        return
    if ftype in _LEAF_TYPES:
        if not isinstance(value, _LEAF_TYPES[ftype]):
            raise ApiMisuse(f"{where}: {_short(ftype)} expects {_LEAF_TYPES[ftype]}, got {value!r}")
        return
    name = _short(ftype)
    if name == "mac_address":
        if not isinstance(value, str) or not _MAC.match(value):
            raise ApiMisuse(f"{where}: MAC address string expected, got {value!r}")
    elif name in ALIASES:
        check_value(where, ALIASES[name]["type"], value)
    elif name in ENUMS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ApiMisuse(f"{where}: {name} value expected, got {value!r}")
        known = {v for _, v in ENUMS[name]}
        if name in FLAG_ENUMS:
            mask = 0
            for v in known:
                mask |= v
            if value & ~mask:
                raise ApiMisuse(f"{where}: {value:#x} has bits outside {name}")
        elif value not in known:
            raise ApiMisuse(f"{where}: {value} is not a {name}")
    elif name in UNIONS:
        arms = {f[1]: f[0] for f in UNIONS[name]}
        if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in arms:
            raise ApiMisuse(f"{where}: one arm of {sorted(arms)} expected, got {value!r}")
        arm, arm_value = next(iter(value.items()))
        check_value(f"{where}.{arm}", arms[arm], arm_value)
    elif name in TYPES:
        check_fields(where, TYPES[name], value)
    else:
        raise ApiMisuse(f"{where}: the table has no type {ftype}")


def check_fields(where: str, spec: list[Field], values: Any) -> None:
    if not isinstance(values, dict):
        raise ApiMisuse(f"{where}: a dict of fields expected, got {values!r}")
    known = {f[1]: f for f in spec}
    unknown = set(values) - set(known)
    if unknown:
        raise ApiMisuse(f"{where}: no field(s) {sorted(unknown)} (known: {sorted(known)})")
    for fname, value in values.items():
        f = known[fname]
        length = f[2] if len(f) > 2 and isinstance(f[2], int) else None
        check_value(f"{where}.{fname}", f[0], value, length)
        if len(f) > 3 and isinstance(f[3], str) and f[3] in values and values[f[3]] != len(value):
            raise ApiMisuse(f"{where}.{f[3]} = {values[f[3]]} but {fname} has {len(value)} elements")


def through_papi(msg: str, values: dict[str, Any]) -> Any:
    """Gate 3: pack with vpp_papi's serializer, unpack as the other side would."""
    packed = PAPI[msg].pack(values)
    decoded, _ = PAPI[msg].unpack(packed)
    return decoded


# ------------------------------------------------------------------------------------------------------------------
# The state.
# ------------------------------------------------------------------------------------------------------------------
IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
RouteKey = tuple[int, bool]  # (table_id, is_ip6)
# Which source's paths an entry shows (VPP: fib_source.h priorities, interface over API over adjacency routes
# over the default-route source).
SOURCE_PRIORITY = ("interface", "api", "adj", "default")


@dataclass
class FakeInterface:
    sw_if_index: int
    name: str
    kind: str  # local, ethernet, loopback, tap, vxlan
    mac: str = "02:00:00:00:00:00"
    tag: str = ""
    up: bool = False
    mtu: int = 9000
    table: dict[bool, int] = field(default_factory=lambda: {False: 0, True: 0})
    unnumbered_to: int | None = None
    addresses: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface] = field(default_factory=list)
    tap: dict[str, Any] = field(default_factory=dict)  # host_if_name, host_namespace, host_mac, host_mtu, ...
    tunnel: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeRoute:
    sources: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def best(self) -> list[dict[str, Any]]:
        for wanted in SOURCE_PRIORITY:
            for src, paths in self.sources.items():
                if paths and src.split(":")[0] == wanted:
                    return paths
        return []


def _path(version: int, kind: int, sw: int = NO_INDEX, nh: Any = None) -> dict[str, Any]:
    nh = nh if nh is not None else ipaddress.ip_address("0.0.0.0" if version == 4 else "::")
    arm = "ip4" if version == 4 else "ip6"
    return {
        "sw_if_index": sw,
        "weight": 1,
        "type": kind,
        "proto": 0 if version == 4 else 1,
        "nh": {"address": {arm: nh}},
        "label_stack": [{}] * 16,
    }


class FakeVpp:
    """The VppApi the driver talks to (call / dump / close), holding the state those messages change."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.interfaces: dict[int, FakeInterface] = {}
        self.tables: dict[RouteKey, str] = {}
        self.routes: dict[RouteKey, dict[IPNet, FakeRoute]] = {}
        self.neighbours: dict[tuple[int, Any], tuple[str, int]] = {}  # (sw, ip) -> (mac, flags)
        self.node_next: dict[str, list[str]] = {n: ["error-drop", "l2-input"] for n in ("vxlan4-input", "vxlan6-input")}
        self.graph_nodes = {"ip4-input", "ip6-input", "ethernet-input", "error-drop", "l2-input"}
        self.closed = False
        self.broken = False  # set by a test: the connection died (VPP restarted)
        self._sw = itertools.count()
        self.on_tap_create: Callable[[FakeInterface], None] | None = None
        self.on_tap_delete: Callable[[FakeInterface], None] | None = None
        self.kernel_links: set[tuple[str, str]] = set()  # (netns, ifname) taken in pods by something else
        self._new_interface("local0", "local")
        uplink = self._new_interface("GigabitEthernet0/8/0", "ethernet")
        uplink.up = True
        uplink.addresses.append(ipaddress.ip_interface("192.0.2.1/24"))
        for is_ip6 in (False, True):
            self._create_table(0, is_ip6, f"ipv{6 if is_ip6 else 4}-VRF:0")

    # ---------------------------------------------------------------------------------------------- VppApi
    def call(self, msg: str, fields: dict[str, object]) -> Any:
        request = self._receive(msg, fields)
        if msg in DUMPS:
            raise ApiMisuse(f"{msg} is a dump: use dump()")
        reply_name = f"{msg}_reply"
        reply = getattr(self, f"_do_{msg}")(request)
        check_fields(reply_name, MESSAGES[reply_name], reply)
        return through_papi(reply_name, reply)

    def dump(self, msg: str, fields: dict[str, object]) -> list[Any]:
        if msg not in DUMPS:
            raise ApiMisuse(f"{msg} is not a dump")
        request = self._receive(msg, fields)
        details = DUMPS[msg]
        out = []
        for item in getattr(self, f"_do_{msg}")(request):
            check_fields(details, MESSAGES[details], item)
            out.append(through_papi(details, item))
        return out

    def close(self) -> None:
        self.closed = True

    def alive(self) -> bool:
        return not self.broken

    def _receive(self, msg: str, fields: dict[str, object]) -> Any:
        if msg not in MESSAGES or msg.endswith(("_reply", "_details")):
            raise ApiMisuse(f"{msg}: not a request message of the table")
        check_fields(msg, MESSAGES[msg], fields)
        self.calls.append((msg, dict(fields)))
        return through_papi(msg, dict(fields))

    # ---------------------------------------------------------------------------------------------- helpers
    @property
    def mutations(self) -> list[tuple[str, dict[str, Any]]]:
        return [c for c in self.calls if c[0] not in READS and c[0] != "add_node_next"]

    def by_tag(self, tag: str) -> FakeInterface | None:
        return next((i for i in self.interfaces.values() if i.tag == tag), None)

    def api_routes(self, table_id: int, is_ip6: bool) -> dict[IPNet, list[dict[str, Any]]]:
        return {p: r.sources["api"] for p, r in self.routes.get((table_id, is_ip6), {}).items() if r.sources.get("api")}

    def state(self) -> Any:
        """Everything observable, for before/after comparisons."""
        ifaces = {
            i.sw_if_index: (i.name, i.tag, i.up, dict(i.table), i.unnumbered_to, tuple(i.addresses))
            for i in self.interfaces.values()
        }
        routes = {
            (k, p): {s: repr(paths) for s, paths in r.sources.items() if paths}
            for k, table in self.routes.items()
            for p, r in table.items()
        }
        return ifaces, dict(self.tables), routes, dict(self.neighbours)

    def _new_interface(self, name: str, kind: str, **kw: Any) -> FakeInterface:
        sw = next(self._sw)
        iface = FakeInterface(sw, name, kind, **kw)
        self.interfaces[sw] = iface
        return iface

    def _create_table(self, table_id: int, is_ip6: bool, name: str) -> None:
        self.tables[(table_id, is_ip6)] = name
        table = self.routes.setdefault((table_id, is_ip6), {})
        version = 6 if is_ip6 else 4
        drop = 2
        # VPP's own entries in a new table: a dropping default, and the special prefixes. fe80::/10 shows as a
        # normal path through ~0 (a lookup in the link-local table), which the driver must not take for its own.
        v4_specials = ["0.0.0.0/0", "0.0.0.0/32", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32"]
        specials = ["::/0"] if is_ip6 else v4_specials
        for prefix in specials:
            table.setdefault(ipaddress.ip_network(prefix), FakeRoute()).sources["default"] = [_path(version, drop)]
        if is_ip6:
            table.setdefault(ipaddress.ip_network("fe80::/10"), FakeRoute()).sources["default"] = [_path(6, 0)]

    def _iface(self, sw: int) -> FakeInterface | None:
        return self.interfaces.get(int(sw))

    def _delete_interface(self, iface: FakeInterface) -> None:
        # What VPP does to interfaces that borrow the address of one being deleted is not something the driver
        # may rely on (not established from the sources): it must release them first.
        borrowers = [o.sw_if_index for o in self.interfaces.values() if o.unnumbered_to == iface.sw_if_index]
        if borrowers:
            raise ApiMisuse(f"interface {iface.sw_if_index} deleted while {borrowers} are unnumbered to it")
        del self.interfaces[iface.sw_if_index]
        for key in [k for k in self.neighbours if k[0] == iface.sw_if_index]:
            self._drop_neighbour(key)
        for table in self.routes.values():
            for route in table.values():
                paths = route.sources.get("interface", [])
                if paths and all(p["sw_if_index"] == iface.sw_if_index for p in paths):
                    del route.sources["interface"]
        # Routes added through the API stay, through an index that no longer exists: VPP does the same.

    def _drop_neighbour(self, key: tuple[int, Any]) -> None:
        self.neighbours.pop(key, None)
        for table in self.routes.values():
            for route in table.values():
                route.sources.pop(f"adj:{key[0]}:{key[1]}", None)

    # ---------------------------------------------------------------------------------------------- handlers
    def _do_sw_interface_dump(self, req: Any) -> list[dict[str, Any]]:
        want = int(req.sw_if_index)
        out = []
        for iface in sorted(self.interfaces.values(), key=lambda i: i.sw_if_index):
            if want not in (0, NO_INDEX) and iface.sw_if_index != want:
                continue
            out.append(
                {
                    "sw_if_index": iface.sw_if_index,
                    "sup_sw_if_index": iface.sw_if_index,
                    "l2_address": iface.mac,
                    "flags": (1 | 2) if iface.up else 0,
                    "link_mtu": min(iface.mtu, 0xFFFF),
                    "mtu": [iface.mtu, 0, 0, 0],
                    "interface_name": iface.name,
                    "interface_dev_type": iface.kind,
                    "tag": iface.tag,
                }
            )
        return out

    def _do_sw_interface_set_flags(self, req: Any) -> dict[str, Any]:
        iface = self._iface(req.sw_if_index)
        if iface is None:
            return {"retval": RV_INVALID_SW_IF_INDEX}
        iface.up = bool(int(req.flags) & 1)
        return {"retval": 0}

    def _do_sw_interface_tag_add_del(self, req: Any) -> dict[str, Any]:
        iface = self._iface(req.sw_if_index)
        if iface is None:
            return {"retval": RV_INVALID_SW_IF_INDEX}
        if req.is_add and not req.tag:
            return {"retval": RV_INVALID_VALUE}  # interface_api.c: an empty tag is refused
        iface.tag = req.tag if req.is_add else ""
        return {"retval": 0}

    def _do_sw_interface_set_table(self, req: Any) -> dict[str, Any]:
        # interface_api.c ip_table_bind(): the table must exist, and an interface that has an address, or
        # borrows one (honour unnumbered), may not be bound -- not even to the table it is in.
        iface = self._iface(req.sw_if_index)
        if iface is None:
            return {"retval": RV_INVALID_SW_IF_INDEX}
        if (int(req.vrf_id), bool(req.is_ipv6)) not in self.tables:
            return {"retval": RV_NO_SUCH_FIB}
        if iface.addresses or iface.unnumbered_to is not None:
            return {"retval": RV_ADDRESS_FOUND_FOR_INTERFACE}
        iface.table[bool(req.is_ipv6)] = int(req.vrf_id)
        return {"retval": 0}

    def _do_sw_interface_get_table(self, req: Any) -> dict[str, Any]:
        iface = self._iface(req.sw_if_index)
        if iface is None:
            return {"retval": RV_INVALID_SW_IF_INDEX, "vrf_id": 0}
        return {"retval": 0, "vrf_id": iface.table[bool(req.is_ipv6)]}

    def _do_sw_interface_set_unnumbered(self, req: Any) -> dict[str, Any]:
        # sw_if_index has the address, unnumbered_sw_if_index borrows it; both in the same tables
        # (vnet_sw_interface_update_unnumbered: UNEXPECTED_INTF_STATE).
        target = self._iface(req.unnumbered_sw_if_index)
        source = self._iface(req.sw_if_index)
        if target is None:
            return {"retval": RV_INVALID_SW_IF_INDEX}
        if not req.is_add:
            target.unnumbered_to = None
            return {"retval": 0}
        if source is None:
            return {"retval": -10}  # VNET_API_ERROR_INVALID_SW_IF_INDEX_2
        if source.table != target.table:
            return {"retval": RV_UNEXPECTED_INTF_STATE}
        target.unnumbered_to = source.sw_if_index
        return {"retval": 0}

    def _do_sw_interface_add_del_address(self, req: Any) -> dict[str, Any]:
        iface = self._iface(req.sw_if_index)
        if iface is None:
            return {"retval": RV_INVALID_SW_IF_INDEX}
        address = ipaddress.ip_interface(req.prefix)
        is_ip6 = address.version == 6
        key = (iface.table[is_ip6], is_ip6)
        if not req.is_add:
            if address in iface.addresses:
                iface.addresses.remove(address)
            return {"retval": 0}
        if address in iface.addresses:
            return {"retval": 0}
        for other in self.interfaces.values():  # same-table conflicts only (ip4_add_del_interface_address)
            same_table = other.table[is_ip6] == key[0]
            if other is not iface and same_table and any(a.network.overlaps(address.network) for a in other.addresses):
                return {"retval": RV_DUPLICATE_IF_ADDRESS}
        iface.addresses.append(address)
        host = ipaddress.ip_network(address.ip)
        route = self.routes[key].setdefault(host, FakeRoute())
        route.sources["interface"] = [_path(address.version, 1, iface.sw_if_index)]
        return {"retval": 0}

    def _do_create_loopback(self, req: Any) -> dict[str, Any]:
        n = sum(1 for i in self.interfaces.values() if i.kind == "loopback")
        mac = str(req.mac_address)
        mac = mac if mac != "00:00:00:00:00:00" else f"de:ad:00:00:00:{n:02x}"  # VPP picks one for a zero MAC
        iface = self._new_interface(f"loop{n}", "loopback", mac=mac)
        return {"retval": 0, "sw_if_index": iface.sw_if_index}

    def _do_delete_loopback(self, req: Any) -> dict[str, Any]:
        iface = self._iface(req.sw_if_index)
        if iface is None or iface.kind != "loopback":
            return {"retval": RV_INVALID_SW_IF_INDEX}
        self._delete_interface(iface)
        return {"retval": 0}

    def _do_tap_create_v3(self, req: Any) -> dict[str, Any]:
        failed = {"retval": RV_NETLINK_ERROR, "sw_if_index": NO_INDEX}
        ns, name = str(req.host_namespace), str(req.host_if_name)
        if not (req.host_namespace_set and req.host_if_name_set):
            raise ApiMisuse("the driver must place and name the pod's interface")
        taken = {(t.tap["host_namespace"], t.tap["host_if_name"]) for t in self.interfaces.values() if t.tap}
        if (ns, name) in taken or (ns, name) in self.kernel_links:
            return failed  # vnet_netlink_set_link_netns(): the name exists in the netns
        ip4 = ipaddress.ip_interface(req.host_ip4_prefix) if req.host_ip4_prefix_set else None
        # tap.c adds the gateway with only RTA_GATEWAY (vnet_netlink_add_ip4_route): the kernel rejects a gateway
        # outside the host prefix ("Nexthop has invalid gateway") and any IPv6 link-local one ("Egress device not
        # specified"), both measured on the test machines; then the whole create fails.
        if req.host_ip4_gw_set and (ip4 is None or ipaddress.ip_address(req.host_ip4_gw) not in ip4.network):
            return failed
        if req.host_ip6_gw_set and ipaddress.ip_address(req.host_ip6_gw).is_link_local:
            return failed
        ids = {t.tap["id"] for t in self.interfaces.values() if t.tap}
        tap_id = int(req.id) if int(req.id) != NO_INDEX else next(i for i in itertools.count() if i not in ids)
        iface = self._new_interface(
            f"tap{tap_id}",
            "tap",
            mac=str(req.mac_address) if not req.use_random_mac else "02:fe:00:00:00:01",
            tag=str(req.tag),
            mtu=9000,
        )
        iface.tap = {
            "id": tap_id,
            "host_if_name": name,
            "host_namespace": ns,
            "host_mac": str(req.host_mac_addr) if req.host_mac_addr_set else "",
            "host_mtu": int(req.host_mtu_size) if req.host_mtu_set else 1500,
            "host_ip4": ip4,
            "host_ip6": ipaddress.ip_interface(req.host_ip6_prefix) if req.host_ip6_prefix_set else None,
            "tap_flags": int(req.tap_flags),
        }
        if self.on_tap_create is not None:
            self.on_tap_create(iface)
        return {"retval": 0, "sw_if_index": iface.sw_if_index}

    def _do_tap_delete_v2(self, req: Any) -> dict[str, Any]:
        iface = self._iface(req.sw_if_index)
        if iface is None or iface.kind != "tap":
            return {"retval": RV_INVALID_SW_IF_INDEX}
        self._delete_interface(iface)
        if self.on_tap_delete is not None:
            self.on_tap_delete(iface)
        return {"retval": 0}

    def _do_ip_table_add_del(self, req: Any) -> dict[str, Any]:
        key = (int(req.table.table_id), bool(req.table.is_ip6))
        if req.is_add:
            if key not in self.tables:
                self._create_table(key[0], key[1], str(req.table.name))
            return {"retval": 0}
        if key[0] == 0:
            return {"retval": RV_INVALID_VALUE}
        if any(i.table[key[1]] == key[0] for i in self.interfaces.values()):
            raise ApiMisuse(f"table {key} deleted while interfaces are still bound to it")
        self.tables.pop(key, None)
        self.routes.pop(key, None)
        return {"retval": 0}

    def _do_ip_table_dump(self, req: Any) -> list[dict[str, Any]]:
        return [{"table": {"table_id": t, "is_ip6": v6, "name": name}} for (t, v6), name in sorted(self.tables.items())]

    def _route_details(self, key: RouteKey, prefix: IPNet, route: FakeRoute) -> dict[str, Any]:
        paths = route.best()
        return {"table_id": key[0], "prefix": prefix, "n_paths": len(paths), "paths": paths}

    def _do_ip_route_dump(self, req: Any) -> list[dict[str, Any]]:
        key = (int(req.table.table_id), bool(req.table.is_ip6))
        table = self.routes.get(key, {})
        return [
            {"route": self._route_details(key, p, r)}
            for p, r in sorted(table.items(), key=lambda kv: str(kv[0]))
            if r.best()
        ]

    def _do_ip_route_lookup(self, req: Any) -> dict[str, Any]:
        prefix = ipaddress.ip_network(req.prefix)
        if not req.exact:
            raise ApiMisuse("only exact lookups are modelled")
        key = (int(req.table_id), prefix.version == 6)
        if key not in self.tables:
            return {"retval": RV_NO_SUCH_FIB, "route": {"n_paths": 0, "paths": []}}
        route = self.routes[key].get(prefix)
        if route is None or not route.best():
            return {"retval": RV_NO_SUCH_ENTRY, "route": {"n_paths": 0, "paths": []}}
        return {"retval": 0, "route": self._route_details(key, prefix, route)}

    def _do_ip_route_add_del(self, req: Any) -> dict[str, Any]:
        # ip_api.c / fib_api.c: the table must exist; an add needs paths and replaces the API source's paths when
        # is_multipath is false; a delete without paths removes the API source's entry, and answers 0 either way.
        r = req.route
        prefix = ipaddress.ip_network(r.prefix)
        key = (int(r.table_id), prefix.version == 6)
        if key not in self.tables:
            return {"retval": RV_NO_SUCH_FIB, "stats_index": 0}
        if req.is_multipath:
            raise ApiMisuse("the driver replaces routes whole (is_multipath=false)")
        table = self.routes[key]
        if not req.is_add:
            if prefix in table:
                table[prefix].sources.pop("api", None)
                if not table[prefix].best():
                    del table[prefix]
            return {"retval": 0, "stats_index": 0}
        if not r.paths:
            return {"retval": RV_NO_PATHS_IN_ROUTE, "stats_index": 0}
        paths = []
        for p in r.paths:
            sw = int(p.sw_if_index)
            if int(p.type) == 0 and sw != NO_INDEX and sw not in self.interfaces:
                return {"retval": RV_NO_MATCHING_INTERFACE, "stats_index": 0}
            version = 4 if int(p.proto) == 0 else 6
            nh = p.nh.address.ip4 if version == 4 else p.nh.address.ip6
            paths.append(_path(version, int(p.type), sw, nh))
        table.setdefault(prefix, FakeRoute()).sources["api"] = paths
        return {"retval": 0, "stats_index": 1}

    def _do_ip_address_dump(self, req: Any) -> list[dict[str, Any]]:
        iface = self._iface(req.sw_if_index)
        if iface is None:
            return []
        return [
            {"sw_if_index": iface.sw_if_index, "prefix": a}
            for a in iface.addresses
            if (a.version == 6) == bool(req.is_ipv6)
        ]

    def _do_ip_unnumbered_dump(self, req: Any) -> list[dict[str, Any]]:
        return [
            {"sw_if_index": i.sw_if_index, "ip_sw_if_index": i.unnumbered_to}
            for i in self.interfaces.values()
            if i.unnumbered_to is not None and int(req.sw_if_index) in (NO_INDEX, i.sw_if_index)
        ]

    def _do_ip_neighbor_add_del(self, req: Any) -> dict[str, Any]:
        n = req.neighbor
        iface = self._iface(n.sw_if_index)
        if iface is None:
            return {"retval": RV_INVALID_SW_IF_INDEX, "stats_index": 0}
        ip = ipaddress.ip_address(n.ip_address)
        key = (iface.sw_if_index, ip)
        if not req.is_add:
            if key not in self.neighbours:
                return {"retval": RV_NO_SUCH_ENTRY, "stats_index": 0}
            self._drop_neighbour(key)
            return {"retval": 0, "stats_index": 0}
        flags = int(n.flags)
        self._drop_neighbour(key)
        self.neighbours[key] = (str(n.mac_address), flags)
        if not flags & 2:  # no NO_FIB_ENTRY: ip_neighbor adds an adjacency-sourced host route in the interface's VRF
            table = self.routes[(iface.table[ip.version == 6], ip.version == 6)]
            route = table.setdefault(ipaddress.ip_network(ip), FakeRoute())
            route.sources[f"adj:{key[0]}:{key[1]}"] = [_path(ip.version, 0, iface.sw_if_index, ip)]
        return {"retval": 0, "stats_index": 1}

    def _do_ip_neighbor_dump(self, req: Any) -> list[dict[str, Any]]:
        version = 6 if int(req.af) == 1 else 4
        out = []
        for (sw, ip), (mac, flags) in sorted(self.neighbours.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
            if ip.version != version or int(req.sw_if_index) not in (NO_INDEX, sw):
                continue
            neigh = {"sw_if_index": sw, "flags": flags, "mac_address": mac, "ip_address": ip}
            out.append({"age": 0.0, "neighbor": neigh})
        return out

    def _tunnel_key(self, src: Any, dst: Any, src_port: int, encap: int, vni: int) -> tuple[Any, ...]:
        return (ipaddress.ip_address(src), ipaddress.ip_address(dst), src_port or 4789, encap, vni)

    def _do_vxlan_add_del_tunnel_v3(self, req: Any) -> dict[str, Any]:
        # plugins/vxlan/vxlan_api.c + vxlan.c: same family and different ends, encap VRF must exist, a decap next
        # must be an arc of vxlanN-input (~0 = l2-input), and (src, dst, src_port, encap VRF, VNI) is unique.
        src, dst = ipaddress.ip_address(req.src_address), ipaddress.ip_address(req.dst_address)
        fail = {"sw_if_index": NO_INDEX}
        if src.version != dst.version:
            return {**fail, "retval": RV_INVALID_VALUE}
        if src == dst:
            return {**fail, "retval": RV_SAME_SRC_DST}
        if (int(req.encap_vrf_id), src.version == 6) not in self.tables:
            return {**fail, "retval": RV_NO_SUCH_FIB}
        key = self._tunnel_key(src, dst, int(req.src_port), int(req.encap_vrf_id), int(req.vni))
        existing = next((i for i in self.interfaces.values() if i.tunnel and i.tunnel["key"] == key), None)
        if not req.is_add:
            if existing is None:
                return {**fail, "retval": RV_NO_SUCH_ENTRY}
            self._delete_interface(existing)
            return {"retval": 0, "sw_if_index": existing.sw_if_index}
        if existing is not None:
            return {**fail, "retval": RV_TUNNEL_EXIST}
        decap = int(req.decap_next_index)
        if decap != NO_INDEX and decap >= len(self.node_next[f"vxlan{src.version}-input"]):
            return {**fail, "retval": RV_INVALID_DECAP_NEXT}
        instance = sum(1 for i in self.interfaces.values() if i.tunnel)
        iface = self._new_interface(f"vxlan_tunnel{instance}", "vxlan", up=True)  # vxlan.c sets it admin up
        iface.tunnel = {
            "key": key,
            "instance": instance,
            "src": src,
            "dst": dst,
            "src_port": int(req.src_port) or 4789,
            "dst_port": int(req.dst_port) or 4789,
            "encap_vrf_id": int(req.encap_vrf_id),
            "decap_next_index": 1 if decap == NO_INDEX else decap,
            "vni": int(req.vni),
            "is_l3": bool(req.is_l3),
        }
        return {"retval": 0, "sw_if_index": iface.sw_if_index}

    def _do_vxlan_tunnel_v2_dump(self, req: Any) -> list[dict[str, Any]]:
        out = []
        for iface in self.interfaces.values():
            t = iface.tunnel
            if not t or int(req.sw_if_index) not in (NO_INDEX, iface.sw_if_index):
                continue
            out.append(
                {
                    "sw_if_index": iface.sw_if_index,
                    "instance": t["instance"],
                    "src_address": t["src"],
                    "dst_address": t["dst"],
                    "src_port": t["src_port"],
                    "dst_port": t["dst_port"],
                    "mcast_sw_if_index": NO_INDEX,
                    "encap_vrf_id": t["encap_vrf_id"],
                    "decap_next_index": t["decap_next_index"],
                    "vni": t["vni"],
                }
            )
        return out

    def _do_add_node_next(self, req: Any) -> dict[str, Any]:
        node, next_node = str(req.node_name), str(req.next_name)
        if node not in self.node_next:
            return {"retval": RV_NO_SUCH_NODE, "next_index": 0}
        if next_node not in self.graph_nodes:
            return {"retval": RV_NO_SUCH_NODE2, "next_index": 0}
        arcs = self.node_next[node]
        if next_node not in arcs:  # vlib_node_add_next: an existing arc keeps its slot
            arcs.append(next_node)
        return {"retval": 0, "next_index": arcs.index(next_node)}


class FakePodSide:
    """The pod ends as the fake VPP creates them: a tap's host end exists in its netns under its name."""

    def __init__(self, vpp: FakeVpp) -> None:
        self.vpp = vpp
        self.configured: list[PortSpec] = []

    def _host_end(self, port: PortSpec) -> FakeInterface | None:
        for iface in self.vpp.interfaces.values():
            if iface.tap and (iface.tap["host_namespace"], iface.tap["host_if_name"]) == (port.netns, port.ifname):
                return iface
        return None

    def link_state(self, port: PortSpec) -> LinkState:
        if (port.netns, port.ifname) in self.vpp.kernel_links:
            return LinkState.FOREIGN
        tap = self._host_end(port)
        if tap is None:
            return LinkState.ABSENT
        return LinkState.OURS if tap.tap["host_mac"] == port.pod_mac else LinkState.FOREIGN

    def configure(self, port: PortSpec) -> None:
        if self._host_end(port) is None:
            raise DataplaneError(f"{port.ifname} vanished from {port.netns}")
        self.configured.append(port)

    def problems(self, port: PortSpec) -> list[str]:
        tap = self._host_end(port)
        if tap is None:
            return [f"interface {port.ifname} does not exist in {port.netns}"]
        found = []
        if tap.tap["host_mtu"] != port.mtu:
            found.append(f"interface {port.ifname} has MTU {tap.tap['host_mtu']}")
        return found
