"""Host objects (plan records) → rtnetlink requests. Links are referred to by name in the plan and by index in
the kernel; objects whose device does not exist (yet) produce no request."""

from __future__ import annotations

from . import plan
from .diff import HostObject
from .netlink import messages
from .netlink.constants import AF_INET, AF_INET6, RT_SCOPE_LINK, RTN_UNREACHABLE
from .netlink.socket import Request

Index = dict[str, int]


def adds(objects: plan.HostObjects, index: Index) -> list[Request]:
    """In dependency order: rules, neighbours and fdb entries (next hops) before the routes that use them."""
    reqs = [rule(r, add=True) for r in sorted(objects.rules, key=_rule_order)]
    for neigh in objects.neighbours.values():
        if neigh.dev in index:
            reqs.append(
                messages.neighbour(
                    add=True, index=index[neigh.dev], address=neigh.address, mac=neigh.mac, ifname=neigh.dev
                )
            )
    for fdb in objects.fdb:
        if fdb.dev in index:
            reqs.append(messages.fdb(add=True, index=index[fdb.dev], mac=fdb.mac, remote=fdb.remote, ifname=fdb.dev))
    for obj in objects.routes.values():
        req = route(obj, index, add=True)
        if req is not None:
            reqs.append(req)
    return reqs


def deletes(objects: list[HostObject], index: Index) -> list[Request]:
    """Routes first (they use the next hops), then neighbours, fdb entries and rules."""
    ordered = sorted(objects, key=lambda o: 0 if isinstance(o, plan.RouteObj) else 1)
    return [req for obj in ordered for req in delete(obj, index)]


def delete(obj: HostObject, index: Index) -> list[Request]:
    if isinstance(obj, plan.RouteObj):
        req = route(obj, index, add=False)
        return [req] if req is not None else []
    if isinstance(obj, plan.RuleObj):
        return [rule(obj, add=False)]
    if isinstance(obj, plan.NeighObj) and obj.dev in index:
        return [messages.neighbour(add=False, index=index[obj.dev], address=obj.address, mac=obj.mac, ifname=obj.dev)]
    if isinstance(obj, plan.FdbObj) and obj.dev in index:
        return [messages.fdb(add=False, index=index[obj.dev], mac=obj.mac, remote=obj.remote, ifname=obj.dev)]
    return []


def rule(obj: plan.RuleObj, *, add: bool) -> Request:
    family = AF_INET if obj.version == 4 else AF_INET6
    return messages.rule(add=add, family=family, priority=obj.priority, table=obj.table, iifname=obj.iifname)


def route(obj: plan.RouteObj, index: Index, *, add: bool) -> Request | None:
    if obj.unreachable:
        return messages.route(add=add, table=obj.table, dst=obj.dst, rtype=RTN_UNREACHABLE)
    oif = index.get(obj.dev)
    if oif is None:
        return None
    if obj.gateway is None:
        return messages.route(add=add, table=obj.table, dst=obj.dst, oif=oif, scope=RT_SCOPE_LINK)
    return messages.route(add=add, table=obj.table, dst=obj.dst, oif=oif, gateway=obj.gateway, onlink=obj.onlink)


def _rule_order(obj: plan.RuleObj) -> tuple[str, int]:
    return (obj.iifname, obj.version)
