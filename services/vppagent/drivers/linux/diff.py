"""The difference between wanted and actual host objects: what to add (or replace) and what to delete."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import plan

HostObject = plan.RouteObj | plan.RuleObj | plan.NeighObj | plan.FdbObj


@dataclass(slots=True)
class Changes:
    adds: plan.HostObjects = field(default_factory=plan.HostObjects)
    deletes: list[HostObject] = field(default_factory=list)


def host_changes(wanted: plan.HostObjects, actual: plan.HostObjects) -> Changes:
    changes = Changes()
    for route_key, route in wanted.routes.items():
        if actual.routes.get(route_key) != route:
            changes.adds.add_route(route)
    changes.deletes += [r for key, r in actual.routes.items() if key not in wanted.routes]
    changes.adds.rules = wanted.rules - actual.rules
    stale_rules: list[plan.RuleObj] = sorted(actual.rules - wanted.rules, key=_rule_order)
    changes.deletes += stale_rules
    for neigh_key, neigh in wanted.neighbours.items():
        if actual.neighbours.get(neigh_key) != neigh:
            changes.adds.add_neighbour(neigh)
    changes.deletes += [n for key, n in actual.neighbours.items() if key not in wanted.neighbours]
    changes.adds.fdb = wanted.fdb - actual.fdb
    changes.deletes += list(actual.fdb - wanted.fdb)
    return changes


def _rule_order(rule: plan.RuleObj) -> tuple[str, int]:
    return (rule.iifname, rule.version)
