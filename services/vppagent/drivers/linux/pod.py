"""The pod side of a port, programmed through a netlink socket opened inside the pod's netns."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ...errors import DataplaneError
from ...model import HOST_SIDE_MAC, PortSpec, gateway_for
from . import nft
from .netlink import dumps, messages
from .netlink.constants import AF_INET, AF_INET6, RT_TABLE_MAIN, RTPROT_MULTINET
from .netlink.socket import NetlinkSocket, Request

POD_TABLE_BASE = 1000
LEG_LIMIT = 1 << 20  # pod-side tables POD_TABLE_BASE + ifindex
ROUTE_METRIC_BASE = 1000
SOURCE_RULE_PRIORITY = 1000
MARK_RULE_PRIORITY = 900  # ingress-leg replies first, then source addresses
LEG_MARK_BASE = 0x6D000000


def configure(sock: NetlinkSocket, port: PortSpec) -> dumps.Link:
    """Program the pod side; returns its link as found before (index, the MAC it has)."""
    link = dumps.link(sock, port.ifname)
    if link is None:
        raise DataplaneError(f"{port.ifname} vanished from {port.netns} while being configured")
    sock.execute(_requests(link.index, port))
    sync_leg_marks(sock, port.netns)
    return link


def _legs(sock: NetlinkSocket) -> dict[int, str]:
    """The pod's multinet interfaces (index → name): those our source rules send to their own table."""
    tables = {
        r.table
        for fam in (AF_INET, AF_INET6)
        for r in dumps.rules(sock, fam)
        if r.protocol == RTPROT_MULTINET and POD_TABLE_BASE < r.table < POD_TABLE_BASE + LEG_LIMIT
    }
    names = {link.index: link.name for link in dumps.links(sock)}
    return {t - POD_TABLE_BASE: names[t - POD_TABLE_BASE] for t in tables if t - POD_TABLE_BASE in names}


def sync_leg_marks(sock: NetlinkSocket, netns: str) -> None:
    """A pod on several networks may hold the same address on two legs (ranges overlap), so neither the
    destination nor the source tells which leg a reply belongs to. With two or more legs, new inbound
    connections get their leg's mark in conntrack, and replies are routed by that mark to the leg's own table.
    Single-leg pods get nothing (no conntrack in their netns)."""
    legs = _legs(sock)
    if len(legs) < 2:
        if not legs:
            nft.run(netns, _NFT_DROP)
        return
    elements = ", ".join(f'"{name}" : {leg_mark(index):#x}' for index, name in sorted(legs.items()))
    nft.run(netns, _NFT_TABLE.replace("ELEMENTS", elements))
    reqs = [
        messages.mark_rule(add=True, family=fam, mark=leg_mark(i), priority=MARK_RULE_PRIORITY, table=port_table(i))
        for i in legs
        for fam in (AF_INET, AF_INET6)
    ]
    sock.execute(reqs)


def leg_mark(index: int) -> int:
    return LEG_MARK_BASE | index


def forget_leg(sock: NetlinkSocket, netns: str, index: int) -> None:
    """Remove the pod-side rules of a leg about to go (the pod may live on with its other legs)."""
    table = port_table(index)
    ours = [r for fam in (AF_INET, AF_INET6) for r in dumps.rules(sock, fam) if r.protocol == RTPROT_MULTINET]
    sock.execute([messages.rule_delete_exact(r) for r in ours if r.table == table])
    remaining = _legs(sock)
    remaining.pop(index, None)
    marks = [r for r in ours if r.fwmark and r.table != table]
    if len(remaining) < 2 and marks:  # one leg left: it needs no marks any more (single-leg pods never had any)
        sock.execute([messages.rule_delete_exact(r) for r in marks])
        nft.run(netns, _NFT_DROP)


# rebuilt whole in one transaction (add-then-delete makes it idempotent)
_NFT_TABLE = """table inet multinet
delete table inet multinet
table inet multinet {
  map legs { type ifname : mark; elements = { ELEMENTS } }
  chain mark_ingress {
    type filter hook prerouting priority mangle; policy accept;
    ct state new ct mark set iifname map @legs
  }
  chain route_replies {
    type route hook output priority mangle; policy accept;
    ct mark != 0 meta mark set ct mark
  }
}
"""
_NFT_DROP = "table inet multinet\ndelete table inet multinet\n"


def port_table(index: int) -> int:
    """The pod-side routing table of one interface (pod-local ids: the pod is its own routing world)."""
    return POD_TABLE_BASE + index


def _requests(index: int, port: PortSpec) -> list[Request]:
    """Addresses, the gateway's static neighbour, and the routes twice: in main with a per-interface metric
    (two networks may share a range, so both routes must coexist; the first interface wins by default) and in
    the interface's own table, selected by a rule on the interface's addresses — so replies leave through the
    interface that owns their source address (what the `sbr` plugin does for Multus users, built in)."""
    reqs = [messages.link_up("lo"), messages.link_up(port.ifname)]
    versions = sorted({ip.version for ip in port.ips})
    table = port_table(index)
    for ip in port.ips:
        reqs.append(messages.addr_add(index, ip.ip, ip.max_prefixlen, port.ifname))
        reqs.append(messages.source_rule(add=True, source=ip.ip, priority=SOURCE_RULE_PRIORITY, table=table))
    reqs += gateway_neighbours(index, port.ifname, versions)
    for route in port.routes:
        if route.dst.version not in versions:
            continue
        gateway = route.gateway or gateway_for(route.dst.network_address)
        onlink = route.dst.version == 4
        for target, metric in ((RT_TABLE_MAIN, ROUTE_METRIC_BASE + index), (table, 0)):
            reqs.append(
                messages.route(
                    add=True, table=target, dst=route.dst, oif=index, gateway=gateway, onlink=onlink, metric=metric
                )
            )
    return reqs


def gateway_neighbours(index: int, ifname: str, versions: Iterable[int]) -> list[Request]:
    """The link-local gateway's static neighbour per IP version. The kernel flushes an interface's neighbours,
    permanent ones included, when its MAC changes: whoever follows a pod's MAC re-adds these."""
    return [
        messages.neighbour(
            add=True,
            index=index,
            address=gateway_for(ipaddress.ip_address("0.0.0.0" if version == 4 else "::")),
            mac=HOST_SIDE_MAC,
            ifname=ifname,
        )
        for version in sorted(set(versions))
    ]


def problems(sock: NetlinkSocket, port: PortSpec) -> list[str]:
    """Differences between what the pod side holds and what `port` says (CNI CHECK)."""
    link = dumps.link(sock, port.ifname)
    if link is None:
        return [f"interface {port.ifname} does not exist in {port.netns}"]
    found: list[str] = []
    if not link.up:
        found.append(f"interface {port.ifname} is down")
    if link.mac != port.pod_mac:
        found.append(f"interface {port.ifname} has MAC {link.mac}, expected {port.pod_mac}")
    if link.mtu != port.mtu:
        found.append(f"interface {port.ifname} has MTU {link.mtu}, expected {port.mtu}")
    have = {(a.address, a.prefixlen) for a in dumps.addresses(sock) if a.index == link.index}
    for ip in port.ips:
        if (ip.ip, ip.max_prefixlen) not in have:
            found.append(f"address {ip.ip}/{ip.max_prefixlen} missing on {port.ifname}")
    routes = {
        (r.dst, r.oif) for fam in (AF_INET, AF_INET6) for r in dumps.routes(sock, fam) if r.table == RT_TABLE_MAIN
    }
    versions = {ip.version for ip in port.ips}
    for route in port.routes:
        if route.dst.version in versions and (route.dst, link.index) not in routes:
            found.append(f"route to {route.dst} via {port.ifname} missing")
    return found
