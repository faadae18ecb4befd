"""Turning Apply/Delete requests into validated store changes (pure apart from reading the current objects)."""

from __future__ import annotations

from dataclasses import dataclass, field

from multinet.v1 import catalog_pb2, events_pb2

from . import pools, validate
from .store import CatalogStore, Change
from .validate import IpamParser

E = events_pb2


@dataclass(slots=True)
class Plan:
    changes: list[Change] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def plan_apply(store: CatalogStore, request: catalog_pb2.ApplyRequest, parse_ipam: IpamParser) -> Plan:
    """Validate everything first; nothing is written unless every object is valid."""
    validate.unique_names("network", [n.name for n in request.networks])
    validate.unique_names("attachment", [f"{a.namespace or 'default'}/{a.name}" for a in request.attachments])
    plan = Plan()
    networks = dict(store.networks)
    for given in request.networks:
        net = validate.network(given, networks)
        networks[net.name] = net
        _plan_object(
            plan,
            f"network/{net.name}",
            "networks",
            (net.name,),
            net,
            store.networks.get(net.name),
            (E.NETWORK_ADDED, E.NETWORK_CHANGED),
        )
    for given_att in request.attachments:
        att = validate.attachment(given_att, networks, parse_ipam)
        key = (att.namespace, att.name)
        _plan_object(
            plan,
            f"attachment/{att.namespace}/{att.name}",
            "attachments",
            key,
            att,
            store.attachments.get(key),
            (E.ATTACHMENT_DEFINITION_ADDED, E.ATTACHMENT_DEFINITION_CHANGED),
        )
    return plan


def _plan_object(
    plan: Plan,
    label: str,
    table: str,
    key: tuple[str, ...],
    obj: catalog_pb2.Network | catalog_pb2.AttachmentDefinition,
    current: catalog_pb2.Network | catalog_pb2.AttachmentDefinition | None,
    event_types: tuple[int, int],
) -> None:
    if current is None:
        plan.created.append(label)
        plan.changes.append(Change(table, key, obj, event_types[0]))
        return
    comparable = type(current).FromString(current.SerializeToString())
    comparable.revision = 0
    if comparable == obj:
        plan.unchanged.append(label)
        return
    plan.updated.append(label)
    plan.changes.append(Change(table, key, obj, event_types[1]))


def plan_delete(store: CatalogStore, request: catalog_pb2.DeleteRequest) -> tuple[list[Change], list[str]]:
    """Deleting a network also removes its pod interfaces (agents then tear them down everywhere)."""
    changes: list[Change] = []
    deleted: list[str] = []
    for ref in request.attachments:
        namespace, _, name = ref.rpartition("/")
        key = (namespace or "default", name)
        current = store.attachments.get(key)
        if current is not None:
            changes.append(Change("attachments", key, None, E.ATTACHMENT_DEFINITION_REMOVED, current))
            deleted.append(f"attachment/{key[0]}/{key[1]}")
    for name in request.networks:
        current_net = store.networks.get(name)
        if current_net is None:
            continue
        for ikey, iface in store.interfaces.items():
            if ikey[0] == name:
                changes.append(Change("interfaces", ikey, None, E.POD_DETACHED, iface))
        changes.append(Change("networks", (name,), None, E.NETWORK_REMOVED, current_net))
        changes.extend(pools.forget(store, name))
        deleted.append(f"network/{name}")
    return changes, deleted
