"""Pool pressure levels: what a reported pool usage means, and when it becomes a POOL_PRESSURE event.

The level is NORMAL below HIGH_PERCENT reserved, HIGH at or above it, EXHAUSTED when some range has no free address
(an ADD would fail). Only a change of level is an event (also back to NORMAL), so a controller sees each crossing
once, whatever the number of ADDs and DELs and of front doors reporting."""

from __future__ import annotations

from multinet.v1 import catalog_pb2, events_pb2

from .store import CatalogStore, Change

HIGH_PERCENT = 80
L = events_pb2.PoolPressureLevel


def pressure(usage: catalog_pb2.PoolUsage) -> events_pb2.PoolPressure:
    percent = usage.reserved * 100 // usage.size if usage.size else 100
    if usage.exhausted:
        level = L.POOL_PRESSURE_LEVEL_EXHAUSTED
    elif percent >= HIGH_PERCENT:
        level = L.POOL_PRESSURE_LEVEL_HIGH
    else:
        level = L.POOL_PRESSURE_LEVEL_NORMAL
    return events_pb2.PoolPressure(
        network=usage.network, size=usage.size, reserved=usage.reserved, level=level, percent=min(percent, 100)
    )


def plan_report(store: CatalogStore, usage: catalog_pb2.PoolUsage) -> Change | None:
    """The change recording this report, or None when the network is unknown or its level is unchanged (a first
    report at NORMAL is no news either: a pool starts empty)."""
    if usage.network not in store.networks:
        return None
    current = store.pools.get(usage.network)
    reported = pressure(usage)
    current_level = current.level if current is not None else L.POOL_PRESSURE_LEVEL_NORMAL
    if reported.level == current_level:
        return None
    return Change("pools", (usage.network,), reported, events_pb2.POOL_PRESSURE)


def forget(store: CatalogStore, network: str) -> list[Change]:
    """Bookkeeping when a network is deleted: its pool level goes without an event of its own."""
    if network not in store.pools:
        return []
    return [Change("pools", (network,), None, events_pb2.EVENT_TYPE_UNSPECIFIED)]
