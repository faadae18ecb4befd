"""Builders of rtnetlink requests: one function per kernel operation the linux driver performs."""

from __future__ import annotations

import errno
import functools
import ipaddress
import struct

from .codec import attr, attr_nested, attr_str, attr_u8, attr_u16_be, attr_u32
from .constants import (
    AF_BRIDGE,
    AF_INET,
    AF_INET6,
    AF_UNSPEC,
    FR_ACT_TO_TBL,
    FRA_FWMARK,
    FRA_FWMASK,
    FRA_IIFNAME,
    FRA_PRIORITY,
    FRA_PROTOCOL,
    FRA_SRC,
    FRA_TABLE,
    IFA_ADDRESS,
    IFA_F_NODAD,
    IFA_F_PERMANENT,
    IFA_FLAGS,
    IFA_LOCAL,
    IFF_UP,
    IFLA_ADDRESS,
    IFLA_IFALIAS,
    IFLA_IFNAME,
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_LINKINFO,
    IFLA_MTU,
    IFLA_NET_NS_FD,
    IFLA_VXLAN_ID,
    IFLA_VXLAN_LEARNING,
    IFLA_VXLAN_LINK,
    IFLA_VXLAN_LOCAL,
    IFLA_VXLAN_LOCAL6,
    IFLA_VXLAN_PORT,
    NDA_DST,
    NDA_LLADDR,
    NDA_PROTOCOL,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    NTF_SELF,
    NUD_NOARP,
    NUD_PERMANENT,
    RT_SCOPE_UNIVERSE,
    RTA_DST,
    RTA_GATEWAY,
    RTA_METRICS,
    RTA_OIF,
    RTA_PRIORITY,
    RTA_TABLE,
    RTA_VIA,
    RTAX_MTU,
    RTM_DELLINK,
    RTM_DELNEIGH,
    RTM_DELROUTE,
    RTM_DELRULE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
    RTM_NEWRULE,
    RTM_SETLINK,
    RTN_UNICAST,
    RTNH_F_ONLINK,
    RTPROT_MULTINET,
    VETH_INFO_PEER,
)
from .records import Rule
from .socket import Request, What

IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
FIBRULEHDR = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, res1, res2, action, flags
NDMSG = struct.Struct("=BxxxiHBB")  # family, ifindex, state, flags, type

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

EXISTS_OK = frozenset({errno.EEXIST})
GONE_OK = frozenset({errno.ENOENT, errno.ESRCH, errno.ENODEV, errno.EADDRNOTAVAIL})


def family_of(addr: IPAddress | IPNetwork) -> int:
    return AF_INET if addr.version == 4 else AF_INET6


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def _ifinfo(index: int = 0, flags: int = 0, change: int = 0, family: int = AF_UNSPEC) -> bytes:
    return IFINFOMSG.pack(family, 0, index, flags, change)


def veth_create(host_name: str, host_mac: str, peer_name: str, peer_mac: str, peer_netns_fd: int, mtu: int) -> Request:
    """A veth pair: the host end here, the peer created directly inside the pod netns (no move)."""
    peer = _ifinfo() + attr_str(IFLA_IFNAME, peer_name) + attr(IFLA_ADDRESS, mac_bytes(peer_mac))
    peer += attr_u32(IFLA_MTU, mtu) + attr_u32(IFLA_NET_NS_FD, peer_netns_fd)
    info = attr_nested(
        IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "veth"), attr_nested(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer))
    )
    body = _ifinfo() + attr_str(IFLA_IFNAME, host_name) + attr(IFLA_ADDRESS, mac_bytes(host_mac))
    body += attr_u32(IFLA_MTU, mtu) + info
    return Request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"create veth {host_name}<->{peer_name}")


def link_alias(name: str, alias: str) -> Request:
    """The ownership mark of a link (the kernel ignores IFLA_IFALIAS when creating one, so it is set after)."""
    body = _ifinfo() + attr_str(IFLA_IFNAME, name) + attr_str(IFLA_IFALIAS, alias)
    return Request(RTM_NEWLINK, 0, body, f"set alias of {name}")


def vxlan_create(name: str, vni: int, local: IPAddress, port: int, mtu: int, mac: str, underlay_index: int) -> Request:
    local_attr = attr(IFLA_VXLAN_LOCAL, local.packed) if local.version == 4 else attr(IFLA_VXLAN_LOCAL6, local.packed)
    data = (
        attr_u32(IFLA_VXLAN_ID, vni) + local_attr + attr_u16_be(IFLA_VXLAN_PORT, port) + attr_u8(IFLA_VXLAN_LEARNING, 0)
    )
    if underlay_index:
        data += attr_u32(IFLA_VXLAN_LINK, underlay_index)
    info = attr_nested(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "vxlan"), attr_nested(IFLA_INFO_DATA, data))
    body = _ifinfo() + attr_str(IFLA_IFNAME, name) + attr(IFLA_ADDRESS, mac_bytes(mac)) + attr_u32(IFLA_MTU, mtu)
    body += info
    return Request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"create vxlan {name} vni {vni}", EXISTS_OK)


def link_up(name: str, mtu: int = 0) -> Request:
    """Set a link up by name (index 0 + IFLA_IFNAME selects by name)."""
    body = _ifinfo(0, IFF_UP, IFF_UP) + attr_str(IFLA_IFNAME, name)
    if mtu:
        body += attr_u32(IFLA_MTU, mtu)
    return Request(RTM_NEWLINK, 0, body, f"set {name} up")


def link_set_down(index: int, name: str) -> Request:
    return Request(RTM_SETLINK, 0, _ifinfo(index, 0, IFF_UP), f"set {name} down", GONE_OK)


def link_retire(index: int, new_name: str, old_name: str) -> Request:
    """Down and renamed in one message: the name is free at once, the slow deletion can follow."""
    body = _ifinfo(index, 0, IFF_UP) + attr_str(IFLA_IFNAME, new_name)
    return Request(RTM_SETLINK, 0, body, f"retire {old_name} as {new_name}", GONE_OK)


def link_delete_index(index: int, name: str) -> Request:
    return Request(RTM_DELLINK, 0, _ifinfo(index), f"delete link {name} (index {index})", GONE_OK)


def link_delete(name: str) -> Request:
    return Request(RTM_DELLINK, 0, _ifinfo() + attr_str(IFLA_IFNAME, name), f"delete link {name}", GONE_OK)


def addr_add(index: int, address: IPAddress, prefixlen: int, ifname: str) -> Request:
    family = family_of(address)
    flags = IFA_F_PERMANENT | (IFA_F_NODAD if family == AF_INET6 else 0)
    body = IFADDRMSG.pack(family, prefixlen, flags & 0xFF, RT_SCOPE_UNIVERSE, index)
    body += attr(IFA_LOCAL, address.packed) + attr(IFA_ADDRESS, address.packed) + attr_u32(IFA_FLAGS, flags)
    return Request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, body, f"add {address}/{prefixlen} on {ifname}")


def route(
    *,
    add: bool,
    table: int,
    dst: IPNetwork,
    oif: int = 0,
    gateway: IPAddress | None = None,
    onlink: bool = False,
    rtype: int = RTN_UNICAST,
    scope: int = RT_SCOPE_UNIVERSE,
    mtu: int = 0,
    metric: int = 0,
    replace: bool = True,
) -> Request:
    head, tail = _route_frame(dst.version, dst.prefixlen, table, oif, gateway, onlink, rtype, scope, mtu, metric)
    body = head + attr(RTA_DST, dst.network_address.packed) + tail if dst.prefixlen else head + tail
    what = What("{} route {} table {}", "add" if add else "delete", dst, table)
    if add:
        flags = NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_EXCL)
        return Request(RTM_NEWROUTE, flags, body, what)
    return Request(RTM_DELROUTE, 0, body, what, GONE_OK)


def rule(*, add: bool, family: int, priority: int, table: int, iifname: str) -> Request:
    body = FIBRULEHDR.pack(family, 0, 0, 0, table if table < 256 else 0, 0, 0, FR_ACT_TO_TBL, 0)
    body += attr_u32(FRA_PRIORITY, priority) + attr_u32(FRA_TABLE, table) + attr_str(FRA_IIFNAME, iifname)
    body += attr_u8(FRA_PROTOCOL, RTPROT_MULTINET)
    fam = "v4" if family == AF_INET else "v6"
    what = f"{'add' if add else 'delete'} {fam} rule iif {iifname} lookup {table}"
    if add:
        return Request(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, body, what, EXISTS_OK)
    return Request(RTM_DELRULE, 0, body, what, GONE_OK)


def source_rule(*, add: bool, source: IPAddress, priority: int, table: int) -> Request:
    """`from <source> lookup <table>`: a pod's replies leave by the interface that owns their address."""
    family = family_of(source)
    body = FIBRULEHDR.pack(family, 0, source.max_prefixlen, 0, table if table < 256 else 0, 0, 0, FR_ACT_TO_TBL, 0)
    body += attr(FRA_SRC, source.packed) + attr_u32(FRA_PRIORITY, priority) + attr_u32(FRA_TABLE, table)
    body += attr_u8(FRA_PROTOCOL, RTPROT_MULTINET)
    what = f"{'add' if add else 'delete'} rule from {source} lookup {table}"
    if add:
        return Request(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, body, what, EXISTS_OK)
    return Request(RTM_DELRULE, 0, body, what, GONE_OK)


def mark_rule(*, add: bool, family: int, mark: int, priority: int, table: int) -> Request:
    """`fwmark <mark> lookup <table>`."""
    body = FIBRULEHDR.pack(family, 0, 0, 0, table if table < 256 else 0, 0, 0, FR_ACT_TO_TBL, 0)
    body += attr_u32(FRA_FWMARK, mark) + attr_u32(FRA_FWMASK, 0xFFFFFFFF) + attr_u32(FRA_PRIORITY, priority)
    body += attr_u32(FRA_TABLE, table) + attr_u8(FRA_PROTOCOL, RTPROT_MULTINET)
    what = What("{} rule fwmark {:#x} lookup {}", "add" if add else "delete", mark, table)
    if add:
        return Request(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, body, what, EXISTS_OK)
    return Request(RTM_DELRULE, 0, body, what, GONE_OK)


def rule_delete_exact(rule: Rule) -> Request:
    """Delete the rule with exactly this priority, table, selector and protocol (as dumped)."""
    body = FIBRULEHDR.pack(rule.family, 0, rule.src_len, 0, 0, 0, 0, FR_ACT_TO_TBL, 0)
    body += attr_u32(FRA_PRIORITY, rule.priority) + attr_u32(FRA_TABLE, rule.table)
    if rule.src is not None:
        body += attr(FRA_SRC, rule.src.packed)
    if rule.fwmark:
        body += attr_u32(FRA_FWMARK, rule.fwmark) + attr_u32(FRA_FWMASK, 0xFFFFFFFF)
    if rule.iifname:
        body += attr_str(FRA_IIFNAME, rule.iifname)
    return Request(RTM_DELRULE, 0, body, What("delete rule pref {} lookup {}", rule.priority, rule.table), GONE_OK)


@functools.lru_cache(maxsize=1024)
def _route_frame(
    version: int,
    prefixlen: int,
    table: int,
    oif: int,
    gateway: IPAddress | None,
    onlink: bool,
    rtype: int,
    scope: int,
    mtu: int,
    metric: int,
) -> tuple[bytes, bytes]:
    """Everything of a route message but its destination, built once per shape: a node programming thousands of
    routes through a few next hops encodes only the destination of each (the bulk path's hot spot)."""
    family = AF_INET if version == 4 else AF_INET6
    flags = RTNH_F_ONLINK if onlink else 0
    head = RTMSG.pack(family, prefixlen, 0, 0, table if table < 256 else 252, RTPROT_MULTINET, scope, rtype, flags)
    head += attr_u32(RTA_TABLE, table)
    tail = attr_u32(RTA_OIF, oif) if oif else b""
    if gateway is not None and gateway.version == version:
        tail += attr(RTA_GATEWAY, gateway.packed)
    elif gateway is not None:  # e.g. an IPv4 route via an IPv6 link-local next hop (RFC 5549)
        tail += attr(RTA_VIA, struct.pack("=H", family_of(gateway)) + gateway.packed)
    if mtu:
        tail += attr_nested(RTA_METRICS, attr_u32(RTAX_MTU, mtu))
    if metric:
        tail += attr_u32(RTA_PRIORITY, metric)
    return head, tail


def plain_rule(*, add: bool, family: int, priority: int, table: int) -> Request:
    """A rule without selector, e.g. the kernel's own `lookup local` moved to another priority."""
    body = FIBRULEHDR.pack(family, 0, 0, 0, table if table < 256 else 0, 0, 0, FR_ACT_TO_TBL, 0)
    body += attr_u32(FRA_PRIORITY, priority) + attr_u32(FRA_TABLE, table)
    what = f"{'add' if add else 'delete'} rule pref {priority} lookup {table}"
    if add:
        return Request(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, body, what, EXISTS_OK)
    return Request(RTM_DELRULE, 0, body, what, GONE_OK)


def neighbour(*, add: bool, index: int, address: IPAddress, mac: str, ifname: str) -> Request:
    body = NDMSG.pack(family_of(address), index, NUD_PERMANENT, 0, 0)
    body += attr(NDA_DST, address.packed) + attr(NDA_LLADDR, mac_bytes(mac)) + attr_u8(NDA_PROTOCOL, RTPROT_MULTINET)
    what = What("{} neighbour {} on {}", "add" if add else "delete", address, ifname)
    if add:
        return Request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, body, what)
    return Request(RTM_DELNEIGH, 0, body, what, GONE_OK)


def fdb(*, add: bool, index: int, mac: str, remote: IPAddress, ifname: str) -> Request:
    """A VXLAN forwarding entry: frames for `mac` go to the VTEP at `remote`."""
    body = NDMSG.pack(AF_BRIDGE, index, NUD_PERMANENT | NUD_NOARP, NTF_SELF, 0)
    body += attr(NDA_LLADDR, mac_bytes(mac)) + attr(NDA_DST, remote.packed)
    what = What("{} fdb {} -> {} on {}", "add" if add else "delete", mac, remote, ifname)
    if add:
        return Request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, body, what)
    return Request(RTM_DELNEIGH, 0, body, what, GONE_OK)
