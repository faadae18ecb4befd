"""Wanted vs. actual for the objects VPP lists in bulk (routes of a VRF, neighbours): pure set arithmetic."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ...model import IPAddress, IPNetwork
from . import actual
from .actual import ActualNeighbour, ActualRoute
from .calls import FIB_API_PATH_TYPE_NORMAL
from .plan import Neighbour, Route


@dataclass(slots=True)
class RouteChanges:
    deletes: list[ActualRoute] = field(default_factory=list)
    adds: list[tuple[Route, int]] = field(default_factory=list)  # with the resolved sw_if_index (~0 for drops)
    problems: list[str] = field(default_factory=list)


def route_matches(want: Route, have: ActualRoute, sw_by_tag: Mapping[str, int]) -> bool:
    if want.is_drop:
        return actual.is_drop(have)
    if len(have.paths) != 1:
        return False
    path = have.paths[0]
    return (
        path.kind == FIB_API_PATH_TYPE_NORMAL
        and path.sw_if_index == sw_by_tag.get(want.iface)
        and path.nexthop == want.nexthop
    )


def route_changes(
    wanted: Iterable[Route],
    have: Iterable[ActualRoute],
    sw_by_tag: Mapping[str, int],
    owned_sw: set[int],
    existing_sw: set[int],
    doomed_sw: frozenset[int] = frozenset(),
) -> RouteChanges:
    """For one table and family. Deletes only routes the agent owns (actual.is_ours) and no longer wants, or that
    go through an interface about to be deleted. A wanted route that differs is not deleted: the add (is_multipath
    false) replaces its paths in place, so traffic never falls through to the VRF's drop route meanwhile."""
    want = {r.prefix: r for r in wanted}
    out = RouteChanges()
    have_by_prefix: dict[IPNetwork, ActualRoute] = {}
    for current in have:
        have_by_prefix[current.prefix] = current
        through_doomed = any(p.sw_if_index in doomed_sw for p in current.paths)
        wanted_here = want.get(current.prefix)
        if (wanted_here is None or through_doomed) and actual.is_ours(current, owned_sw | doomed_sw, existing_sw):
            out.deletes.append(current)
    deleted = {r.prefix for r in out.deletes}
    for prefix, route in want.items():
        present = have_by_prefix.get(prefix)
        if present is not None and prefix not in deleted and route_matches(route, present, sw_by_tag):
            continue
        if route.is_drop:
            out.adds.append((route, 0xFFFFFFFF))
            continue
        sw = sw_by_tag.get(route.iface)
        if sw is None or sw in doomed_sw:
            out.problems.append(f"route {prefix} table {route.table_id}: interface {route.iface} is missing")
            continue
        out.adds.append((route, sw))
    return out


@dataclass(slots=True)
class NeighbourChanges:
    deletes: list[ActualNeighbour] = field(default_factory=list)
    adds: list[tuple[Neighbour, int]] = field(default_factory=list)


def neighbour_changes(
    wanted: Iterable[Neighbour], have: Iterable[ActualNeighbour], sw_by_tag: Mapping[str, int], managed_sw: set[int]
) -> NeighbourChanges:
    """Static neighbours on the interfaces the agent manages; VPP's learned (dynamic) entries are left alone."""
    want: dict[tuple[int, IPAddress], Neighbour] = {}
    for w in wanted:
        sw = sw_by_tag.get(w.iface)
        if sw is not None:
            want[(sw, w.address)] = w
    out = NeighbourChanges()
    current: dict[tuple[int, IPAddress], ActualNeighbour] = {}
    for h in have:
        if h.sw_if_index not in managed_sw:
            continue
        current[(h.sw_if_index, h.address)] = h
        if h.static and (h.sw_if_index, h.address) not in want:
            out.deletes.append(h)
    for (sw, address), w in want.items():
        h_or_none = current.get((sw, address))
        if h_or_none is None or not h_or_none.static or h_or_none.mac != w.mac.lower():
            out.adds.append((w, sw))
    return out
