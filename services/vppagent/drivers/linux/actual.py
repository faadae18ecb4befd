"""Reading back the host-side objects the agent owns, in the same records the plan uses."""

from __future__ import annotations

from ...model import OWNER_ALIAS_PREFIX, TABLE_BASE
from . import plan
from .netlink import dumps
from .netlink.constants import AF_INET, AF_INET6, RTN_UNREACHABLE, RTPROT_MULTINET
from .netlink.socket import NetlinkSocket

_TABLE_END = TABLE_BASE + (1 << 24)


def _ours(table: int) -> bool:
    return TABLE_BASE <= table < _TABLE_END


def read_host_objects(sock: NetlinkSocket, links: dict[str, dumps.Link] | None = None) -> plan.HostObjects:
    links = links if links is not None else {link.name: link for link in dumps.links(sock)}
    names = {link.index: link.name for link in links.values()}
    out = plan.HostObjects()
    for family in (AF_INET, AF_INET6):
        for r in dumps.routes(sock, family):
            if r.protocol == RTPROT_MULTINET and _ours(r.table):
                unreachable = r.rtype == RTN_UNREACHABLE  # IPv6 ones show up on `lo`: the device is not ours
                dev = "" if unreachable else names.get(r.oif, "")
                out.add_route(plan.RouteObj(r.table, r.dst, dev, r.gateway, r.onlink, unreachable))
        for rule in dumps.rules(sock, family):
            if rule.protocol == RTPROT_MULTINET:
                out.rules.add(plan.RuleObj(4 if family == AF_INET else 6, rule.iifname, rule.table, rule.priority))
        for n in dumps.neighbours(sock, family):
            if n.protocol == RTPROT_MULTINET and n.address is not None and n.index in names:
                out.add_neighbour(plan.NeighObj(names[n.index], n.address, n.mac))
    vxlans = {link.index: link for link in links.values() if link.kind == "vxlan" and _owned(link)}
    for entry in dumps.fdb_entries(sock):
        vxlan = vxlans.get(entry.index)
        if vxlan is not None and entry.address is not None and entry.mac != "00:00:00:00:00:00":
            out.fdb.add(plan.FdbObj(vxlan.name, entry.mac, entry.address))
    for link in links.values():
        if not _owned(link):
            continue
        if link.kind == "veth":
            out.ports.add(link.name)
    return out


def _owned(link: dumps.Link) -> bool:
    return link.alias.startswith(OWNER_ALIAS_PREFIX)
