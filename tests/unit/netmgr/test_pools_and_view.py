"""Pool pressure levels in the catalog (one POOL_PRESSURE event per level change, with a revision), and the CNI
front door's resolution of a config name to its attachment definition (install-cni's conflist name, or the name
inside the definition's spec.config as Multus passes it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from multinet.v1 import catalog_pb2, events_pb2

from services.netmgr.catalog import apply, pools
from services.netmgr.catalog.store import CatalogStore, Change
from services.netmgr.cni.view import CatalogView

E = events_pb2
L = events_pb2.PoolPressureLevel


@pytest.fixture
def store(tmp_path: Path) -> CatalogStore:
    s = CatalogStore(tmp_path / "catalog.db")
    s.commit([Change("networks", ("blue",), catalog_pb2.Network(name="blue", vni=1, ranges=["10.0.0.0/24"]), 1)])
    return s


def usage(reserved: int, size: int = 254, exhausted: bool = False, network: str = "blue") -> catalog_pb2.PoolUsage:
    return catalog_pb2.PoolUsage(network=network, size=size, reserved=reserved, exhausted=exhausted)


def report(store: CatalogStore, u: catalog_pb2.PoolUsage) -> events_pb2.Event | None:
    change = pools.plan_report(store, u)
    if change is None:
        return None
    revision = store.commit([change])
    (event,) = store.events_after(revision - 1)
    return event


def test_levels() -> None:
    assert pools.pressure(usage(202)).level == L.POOL_PRESSURE_LEVEL_NORMAL
    assert pools.pressure(usage(204)).level == L.POOL_PRESSURE_LEVEL_HIGH  # 80.3%
    assert pools.pressure(usage(254, exhausted=True)).level == L.POOL_PRESSURE_LEVEL_EXHAUSTED
    assert pools.pressure(usage(204)).percent == 80


def test_one_event_per_level_change_with_a_revision(store: CatalogStore) -> None:
    assert report(store, usage(10)) is None  # a pool starts NORMAL: no news
    high = report(store, usage(210))
    assert high is not None and high.type == E.POOL_PRESSURE
    assert (high.pool.network, high.pool.level, high.pool.reserved) == ("blue", L.POOL_PRESSURE_LEVEL_HIGH, 210)
    assert high.revision == store.revision and high.pool.revision == high.revision
    assert report(store, usage(220)) is None  # still HIGH
    full = report(store, usage(254, exhausted=True))
    assert full is not None and full.pool.level == L.POOL_PRESSURE_LEVEL_EXHAUSTED
    back = report(store, usage(3))
    assert back is not None and back.pool.level == L.POOL_PRESSURE_LEVEL_NORMAL


def test_unknown_network_is_ignored(store: CatalogStore) -> None:
    assert pools.plan_report(store, usage(254, exhausted=True, network="green")) is None


def test_levels_survive_a_restart_and_go_with_their_network(tmp_path: Path, store: CatalogStore) -> None:
    report(store, usage(250))
    store.close()
    reopened = CatalogStore(tmp_path / "catalog.db")
    assert reopened.pools["blue"].level == L.POOL_PRESSURE_LEVEL_HIGH
    changes, _ = apply.plan_delete(reopened, catalog_pb2.DeleteRequest(networks=["blue"]))
    before = reopened.revision
    reopened.commit(changes)
    assert reopened.revision == before + 1  # NETWORK_REMOVED only: forgetting the level is bookkeeping
    assert [e.type for e in reopened.events_after(before)] == [E.NETWORK_REMOVED]
    assert "blue" not in reopened.pools


# ------------------------------------------------------------------------------------------------ view resolution
class _Unused:
    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"no RPC expected: {name}")


def view_with(*atts: catalog_pb2.AttachmentDefinition) -> CatalogView:
    view = CatalogView(_Unused(), _Unused(), "node1")  # type: ignore[arg-type]
    for name in ("blue", "red"):
        view.apply(E.Event(revision=1, type=E.NETWORK_ADDED, network=catalog_pb2.Network(name=name, vni=1)))
    for i, att in enumerate(atts, start=2):
        view.apply(E.Event(revision=i, type=E.ATTACHMENT_DEFINITION_ADDED, attachment=att))
    return view


def nad(namespace: str, name: str, network: str, config_name: str) -> catalog_pb2.AttachmentDefinition:
    config = f'{{"name": "{config_name}", "type": "multinet", "dataplane_options": {{"network_name": "{network}"}},}}'
    return catalog_pb2.AttachmentDefinition(namespace=namespace, name=name, network=network, config_json=config)


def test_config_name_resolves_by_definition_name_or_its_config_name() -> None:
    view = view_with(nad("default", "network-blue-conf", "blue", "network-blue"))
    for name in ("network-blue-conf", "network-blue"):
        resolved = view.resolve(None, name)
        assert resolved is not None and resolved.network.name == "blue"
        assert resolved.attachment is not None and resolved.attachment.name == "network-blue-conf"
    assert view.resolve(None, "network-green") is None


def test_pod_namespace_picks_among_same_named_definitions() -> None:
    view = view_with(nad("ns1", "att", "blue", "cfg"), nad("ns2", "att", "red", "cfg"))
    assert view.network_for(None, "att", "ns2") is not None
    assert view.network_for(None, "att", "ns2").name == "red"  # type: ignore[union-attr]
    assert view.network_for(None, "cfg", "ns1").name == "blue"  # type: ignore[union-attr]
    assert view.network_for(None, "att", "ns3") is None  # ambiguous without the pod's namespace


def test_explicit_network_wins_and_keeps_a_matching_definition() -> None:
    view = view_with(nad("default", "network-blue-conf", "blue", "network-blue"))
    resolved = view.resolve("blue", "network-blue")
    assert resolved is not None and resolved.attachment is not None
    other = view.resolve("red", "network-blue")
    assert other is not None and other.network.name == "red" and other.attachment is None


def test_removed_definition_no_longer_resolves() -> None:
    att = nad("default", "network-blue-conf", "blue", "network-blue")
    view = view_with(att)
    view.apply(E.Event(revision=9, type=E.ATTACHMENT_DEFINITION_REMOVED, attachment=att))
    assert view.resolve(None, "network-blue") is None and view.resolve(None, "network-blue-conf") is None
