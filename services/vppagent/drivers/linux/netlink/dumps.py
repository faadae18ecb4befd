"""Reading kernel state back: dump requests and their replies decoded into small records."""

from __future__ import annotations

import ipaddress

from .codec import Attrs, Message, attr_str, parse_attrs
from .constants import (
    AF_BRIDGE,
    AF_INET,
    AF_INET6,
    AF_UNSPEC,
    FRA_FWMARK,
    FRA_IIFNAME,
    FRA_PRIORITY,
    FRA_PROTOCOL,
    FRA_SRC,
    FRA_TABLE,
    IFA_ADDRESS,
    IFA_LOCAL,
    IFLA_ADDRESS,
    IFLA_IFALIAS,
    IFLA_IFNAME,
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_LINK,
    IFLA_LINKINFO,
    IFLA_MTU,
    IFLA_VXLAN_ID,
    IFLA_VXLAN_LOCAL,
    IFLA_VXLAN_LOCAL6,
    NDA_DST,
    NDA_LLADDR,
    NDA_PROTOCOL,
    RTA_DST,
    RTA_GATEWAY,
    RTA_OIF,
    RTA_TABLE,
    RTA_VIA,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETNEIGH,
    RTM_GETROUTE,
    RTM_GETRULE,
    RTNH_F_ONLINK,
)
from .messages import FIBRULEHDR, IFADDRMSG, IFINFOMSG, NDMSG, RTMSG
from .records import Address, IPAddress, Link, Neighbour, Route, Rule, VxlanInfo
from .socket import NetlinkSocket


def _ip(raw: bytes | None) -> IPAddress | None:
    if raw is None:
        return None
    return ipaddress.ip_address(raw)


def _mac(raw: bytes | None) -> str:
    return ":".join(f"{b:02x}" for b in raw) if raw else ""


def _link(msg: Message) -> Link:
    _family, _type, index, flags, _change = IFINFOMSG.unpack_from(msg.payload)
    attrs = parse_attrs(msg.payload, IFINFOMSG.size)
    info = attrs.nested(IFLA_LINKINFO)
    kind = info.text(IFLA_INFO_KIND)
    return Link(
        index,
        attrs.text(IFLA_IFNAME),
        kind,
        attrs.text(IFLA_IFALIAS),
        _mac(attrs.get(IFLA_ADDRESS)),
        attrs.u32(IFLA_MTU),
        bool(flags & 1),
        attrs.u32(IFLA_LINK),
        _vxlan(info.nested(IFLA_INFO_DATA)) if kind == "vxlan" else None,
    )


def _vxlan(data: Attrs) -> VxlanInfo:
    return VxlanInfo(data.u32(IFLA_VXLAN_ID), _ip(data.get(IFLA_VXLAN_LOCAL) or data.get(IFLA_VXLAN_LOCAL6)))


def links(sock: NetlinkSocket) -> list[Link]:
    return [_link(msg) for msg in sock.dump(RTM_GETLINK, IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0))]


def link(sock: NetlinkSocket, name: str) -> Link | None:
    """One link by name, or None."""
    msg = sock.query(
        RTM_GETLINK, IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0) + attr_str(IFLA_IFNAME, name), f"get link {name}"
    )
    return _link(msg) if msg is not None else None


def addresses(sock: NetlinkSocket, family: int = AF_UNSPEC) -> list[Address]:
    out = []
    for msg in sock.dump(RTM_GETADDR, IFADDRMSG.pack(family, 0, 0, 0, 0)):
        _fam, prefixlen, _flags, _scope, index = IFADDRMSG.unpack_from(msg.payload)
        attrs = parse_attrs(msg.payload, IFADDRMSG.size)
        addr = _ip(attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS))
        if addr is not None:
            out.append(Address(index, addr, prefixlen))
    return out


def routes(sock: NetlinkSocket, family: int) -> list[Route]:
    out = []
    for msg in sock.dump(RTM_GETROUTE, RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)):
        fam, dst_len, _src_len, _tos, table8, proto, scope, rtype, flags = RTMSG.unpack_from(msg.payload)
        attrs = parse_attrs(msg.payload, RTMSG.size)
        dst_raw = attrs.get(RTA_DST)
        zero = b"\0" * (4 if fam == AF_INET else 16)
        dst = ipaddress.ip_network((dst_raw or zero, dst_len))
        gateway = _ip(attrs.get(RTA_GATEWAY))
        via = attrs.get(RTA_VIA)
        if gateway is None and via is not None and len(via) > 2:
            gateway = _ip(via[2:])
        out.append(
            Route(
                attrs.u32(RTA_TABLE, table8),
                dst,
                attrs.u32(RTA_OIF),
                gateway,
                proto,
                rtype,
                scope,
                bool(flags & RTNH_F_ONLINK),
            )
        )
    return out


def rules(sock: NetlinkSocket, family: int) -> list[Rule]:
    out = []
    for msg in sock.dump(RTM_GETRULE, FIBRULEHDR.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)):
        fam, _dl, src_len, _tos, table8, _r1, _r2, _action, _flags = FIBRULEHDR.unpack_from(msg.payload)
        attrs = parse_attrs(msg.payload, FIBRULEHDR.size)
        out.append(
            Rule(
                fam,
                attrs.u32(FRA_PRIORITY),
                attrs.u32(FRA_TABLE, table8),
                attrs.text(FRA_IIFNAME),
                attrs.u8(FRA_PROTOCOL),
                _ip(attrs.get(FRA_SRC)),
                src_len,
                attrs.u32(FRA_FWMARK),
            )
        )
    return out


def neighbours(sock: NetlinkSocket, family: int) -> list[Neighbour]:
    out = []
    for msg in sock.dump(RTM_GETNEIGH, NDMSG.pack(family, 0, 0, 0, 0)):
        fam, index, state, _flags, _type = NDMSG.unpack_from(msg.payload)
        attrs = parse_attrs(msg.payload, NDMSG.size)
        out.append(
            Neighbour(fam, index, _ip(attrs.get(NDA_DST)), _mac(attrs.get(NDA_LLADDR)), state, attrs.u8(NDA_PROTOCOL))
        )
    return out


def fdb_entries(sock: NetlinkSocket) -> list[Neighbour]:
    return neighbours(sock, AF_BRIDGE)


FAMILIES = (AF_INET, AF_INET6)

__all__ = [
    "FAMILIES",
    "Address",
    "Link",
    "Neighbour",
    "Route",
    "Rule",
    "addresses",
    "fdb_entries",
    "link",
    "links",
    "neighbours",
    "routes",
    "rules",
]
