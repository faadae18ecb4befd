"""Streams built on the catalog's event log: desired state for node agents, events for external controllers.

Each stream reads the log at its own pace (pull, not push), so a slow subscriber only delays itself: neither the
other subscribers nor the CNI path ever wait for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from multinet.v1 import agent_pb2, catalog_pb2, events_pb2

from .store import CatalogStore

E = events_pb2
BATCH = 2000


def snapshot(store: CatalogStore) -> agent_pb2.DesiredStateUpdate:
    return agent_pb2.DesiredStateUpdate(
        revision=store.revision,
        snapshot=True,
        networks=list(store.networks.values()),
        nodes=list(store.nodes.values()),
        interfaces=list(store.interfaces.values()),
    )


def delta(events: Sequence[events_pb2.Event]) -> agent_pb2.DesiredStateUpdate:
    """Coalesce events into one update holding only the final state of each object they touched."""
    networks: dict[str, catalog_pb2.Network | None] = {}
    nodes: dict[str, catalog_pb2.Node | None] = {}
    interfaces: dict[tuple[str, str, str], tuple[catalog_pb2.PodInterface, bool]] = {}
    for event in events:
        if event.type in _NETWORK_EVENTS:
            networks[event.network.name] = event.network if event.type != E.NETWORK_REMOVED else None
        elif event.type in _NODE_EVENTS:
            nodes[event.node.name] = event.node if event.type == E.NODE_ADDED else None
        elif event.type in _POD_EVENTS:
            iface = event.interface
            interfaces[(iface.network, iface.container_id, iface.ifname)] = (iface, event.type == E.POD_ATTACHED)
    update = agent_pb2.DesiredStateUpdate(revision=events[-1].revision if events else 0)
    update.networks.extend(n for n in networks.values() if n is not None)
    update.removed_networks.extend(name for name, n in networks.items() if n is None)
    update.nodes.extend(n for n in nodes.values() if n is not None)
    update.removed_nodes.extend(name for name, n in nodes.items() if n is None)
    update.interfaces.extend(i for i, attached in interfaces.values() if attached)
    update.removed_interfaces.extend(i for i, attached in interfaces.values() if not attached)
    return update


_NETWORK_EVENTS = frozenset({E.NETWORK_ADDED, E.NETWORK_CHANGED, E.NETWORK_REMOVED})
_NODE_EVENTS = frozenset({E.NODE_ADDED, E.NODE_REMOVED})
_POD_EVENTS = frozenset({E.POD_ATTACHED, E.POD_DETACHED})


async def desired_state(store: CatalogStore) -> AsyncIterator[agent_pb2.DesiredStateUpdate]:
    first = snapshot(store)
    yield first
    position = first.revision
    while True:
        await store.wait_beyond(position)
        events = store.events_after(position, BATCH)
        if not events or events[0].revision != position + 1:
            # the log no longer reaches back to our position: start over from a full snapshot
            full = snapshot(store)
            position = full.revision
            yield full
            continue
        position = events[-1].revision
        yield delta(events)


class TrimmedError(Exception):
    def __init__(self, oldest: int) -> None:
        super().__init__(
            f"events up to revision {oldest - 1} were trimmed; list the catalog and watch from its revision"
        )


async def events(store: CatalogStore, after: int, types: frozenset[int]) -> AsyncIterator[events_pb2.Event]:
    """Every event after `after`, then live ones, filtered by type."""
    if after and after + 1 < store.oldest_event_revision and after < store.revision:
        raise TrimmedError(store.oldest_event_revision)
    position = after
    while True:
        batch = store.events_after(position, BATCH)
        if not batch:
            await store.wait_beyond(position)
            continue
        if position and batch[0].revision != position + 1:
            raise TrimmedError(batch[0].revision)
        for event in batch:
            if not types or event.type in types:
                yield event
        position = batch[-1].revision
