"""The pod side of a port, programmed through a netlink socket opened inside the pod's netns."""

from __future__ import annotations

import ipaddress

from ...errors import DataplaneError
from ...model import HOST_SIDE_MAC, PortSpec, gateway_for
from .netlink import dumps, messages
from .netlink.constants import AF_INET, AF_INET6, RT_TABLE_MAIN
from .netlink.socket import NetlinkSocket, Request

POD_TABLE_BASE = 1000
ROUTE_METRIC_BASE = 1000
SOURCE_RULE_PRIORITY = 1000


def configure(sock: NetlinkSocket, port: PortSpec) -> None:
    link = dumps.link(sock, port.ifname)
    if link is None:
        raise DataplaneError(f"{port.ifname} vanished from {port.netns} while being configured")
    sock.execute(_requests(link.index, port))


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
    for version in versions:
        gw = gateway_for(ipaddress.ip_address("0.0.0.0" if version == 4 else "::"))
        reqs.append(messages.neighbour(add=True, index=index, address=gw, mac=HOST_SIDE_MAC, ifname=port.ifname))
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
