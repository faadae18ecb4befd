"""The catalog: validation messages that name the field, revisioned writes, an event log that replays exactly,
and desired-state deltas that keep only each object's final state."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

import grpc
import pytest
from multinet.v1 import catalog_pb2, events_pb2

from services.common.local import LocalContext
from services.common.rpc import Context
from services.common.whereabouts import parse_ipam_block
from services.netmgr.catalog import apply, streams
from services.netmgr.catalog.servicer import CatalogServicer
from services.netmgr.catalog.store import CatalogStore, Change
from services.netmgr.catalog.validate import ObjectError

E = events_pb2
SEED_NAD = """{"name": "network-blue", "plugins": [{"type": "calico", "ipam": {"type": "whereabouts",}},
 {"dataplane_options": {"network_name": "blue"}}]}"""


@pytest.fixture
def store(tmp_path: Path) -> CatalogStore:
    return CatalogStore(tmp_path / "catalog.db")


def blue(**kw: object) -> catalog_pb2.Network:
    fields: dict[str, object] = {"name": "blue", "vni": 1234, "ranges": ["192.168.0.0/16"]} | kw
    return catalog_pb2.Network(**fields)  # type: ignore[arg-type]


def plan(
    store: CatalogStore, nets: list[catalog_pb2.Network], atts: list[catalog_pb2.AttachmentDefinition] | None = None
) -> apply.Plan:
    request = catalog_pb2.ApplyRequest(networks=nets, attachments=atts or [])
    return apply.plan_apply(store, request, parse_ipam_block)


def refused(
    store: CatalogStore, nets: list[catalog_pb2.Network], atts: list[catalog_pb2.AttachmentDefinition] | None = None
) -> str:
    with pytest.raises((ObjectError, ValueError)) as info:
        plan(store, nets, atts)
    return str(info.value)


@pytest.mark.parametrize(
    ("network", "field"),
    [
        (blue(name="Blue"), "metadata.name"),
        (blue(name="blue_net"), "metadata.name"),
        (blue(vni=0), "spec.vni"),
        (blue(vni=16_777_216), "spec.vni"),
        (blue(ranges=["192.168.1.1/16"]), "spec.range"),
        (blue(ranges=["not-a-cidr"]), "spec.range"),
        (blue(ranges=[]), "spec.range"),
    ],
)
def test_bad_networks_are_refused_naming_the_field(
    store: CatalogStore, network: catalog_pb2.Network, field: str
) -> None:
    assert field in refused(store, [network])


def test_vni_must_be_unique(store: CatalogStore) -> None:
    store.commit(plan(store, [blue()]).changes)
    message = refused(store, [catalog_pb2.Network(name="red", vni=1234, ranges=["192.168.0.0/16"])])
    assert "spec.vni" in message
    assert "blue" in message


def test_seed_nad_binds_to_its_network_with_the_network_range(store: CatalogStore) -> None:
    nad = catalog_pb2.AttachmentDefinition(name="network-blue-conf", config_json=SEED_NAD)
    result = plan(store, [blue()], [nad])
    store.commit(result.changes)
    att = store.attachments[("default", "network-blue-conf")]
    assert att.network == "blue"
    assert [r.cidr for r in att.ipam.ranges] == ["192.168.0.0/16"]
    assert result.created == ["network/blue", "attachment/default/network-blue-conf"]


def test_nad_for_an_unknown_network_is_refused(store: CatalogStore) -> None:
    nad = catalog_pb2.AttachmentDefinition(name="x", config_json=SEED_NAD)
    message = refused(store, [], [nad])
    assert "unknown network 'blue'" in message
    assert "network_name" in message


def test_nad_with_foreign_ipam_type_is_refused(store: CatalogStore) -> None:
    config = '{"type": "multinet", "network": "blue", "ipam": {"type": "host-local"}}'
    message = refused(store, [blue()], [catalog_pb2.AttachmentDefinition(name="x", config_json=config)])
    assert "ipam.type" in message


def test_reapply_is_unchanged_and_changes_get_new_revisions(store: CatalogStore) -> None:
    first = store.commit(plan(store, [blue()]).changes)
    again = plan(store, [blue()])
    assert again.unchanged == ["network/blue"]
    assert not again.changes
    changed = plan(store, [blue(mtu=1400)])
    assert changed.updated == ["network/blue"]
    assert store.commit(changed.changes) == first + 1


def test_store_survives_reopen_and_replays_events(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    store = CatalogStore(path)
    store.commit(plan(store, [blue()]).changes)
    iface = catalog_pb2.PodInterface(
        network="blue", container_id="c1", ifname="eth1", node="n1", ips=["192.168.0.1/32"]
    )
    store.commit([Change("interfaces", ("blue", "c1", "eth1"), iface, E.POD_ATTACHED)])
    store.commit([Change("interfaces", ("blue", "c1", "eth1"), None, E.POD_DETACHED, iface)])
    store.close()
    reopened = CatalogStore(path)
    assert reopened.revision == 3
    assert not reopened.interfaces
    events = reopened.events_after(0)
    assert [e.type for e in events] == [E.NETWORK_ADDED, E.POD_ATTACHED, E.POD_DETACHED]
    assert [e.revision for e in events] == [1, 2, 3]
    assert events[2].interface.ips == ["192.168.0.1/32"]  # the detach event carries the interface
    assert '"interface":"eth1"' in events[1].network_status_json
    assert [e.revision for e in reopened.events_after(1)] == [2, 3]


def test_delta_keeps_the_final_state_of_each_object() -> None:
    iface = catalog_pb2.PodInterface(network="blue", container_id="c", ifname="eth1")
    attach = events_pb2.Event(revision=1, type=E.POD_ATTACHED, interface=iface)
    detach = events_pb2.Event(revision=2, type=E.POD_DETACHED, interface=iface)
    gone = streams.delta([attach, detach])
    assert not gone.interfaces
    assert len(gone.removed_interfaces) == 1
    back = streams.delta([detach, attach])
    assert len(back.interfaces) == 1
    assert not back.removed_interfaces
    assert back.revision == 1


async def test_event_stream_resumes_without_gaps_or_repeats(store: CatalogStore) -> None:
    store.commit(plan(store, [blue()]).changes)
    for i in range(5):
        iface = catalog_pb2.PodInterface(network="blue", container_id=f"c{i}", ifname="eth1", node="n")
        store.commit([Change("interfaces", ("blue", f"c{i}", "eth1"), iface, E.POD_ATTACHED)])
    seen: list[int] = []

    async def consume(after: int, count: int) -> None:
        async for event in streams.events(store, after, frozenset()):
            seen.append(event.revision)
            if len(seen) == count:
                return

    await asyncio.wait_for(consume(0, 3), 2)
    await asyncio.wait_for(consume(seen[-1], 6), 2)
    assert seen == [1, 2, 3, 4, 5, 6]


async def test_set_interface_mac_applies_only_to_the_record_its_caller_saw(store: CatalogStore) -> None:
    """How an agent reports the MAC a chained plugin gave a pod: only onto the record it saw (revision, netns);
    only the MAC changes; a DEL is never undone."""
    servicer = CatalogServicer(store)
    context = cast(Context, LocalContext())
    store.commit(plan(store, [blue()]).changes)
    key = ("blue", "c1", "eth1")
    iface = catalog_pb2.PodInterface(network="blue", container_id="c1", ifname="eth1", node="n", netns="/run/x")
    iface.mac, iface.ips[:] = "02:00:00:00:00:01", ["192.168.0.5/32"]
    first = await servicer.RecordInterface(catalog_pb2.RecordInterfaceRequest(interface=iface), context)
    store.commit([Change("interfaces", ("blue", "other", "eth1"), catalog_pb2.PodInterface(), E.POD_ATTACHED)])
    assert store.revision != first.revision  # the record's revision, not the catalog's, is what counts

    async def set_mac(expect: int, mac: str = "02:42:00:00:00:42", netns: str = "/run/x") -> grpc.StatusCode:
        request = catalog_pb2.SetInterfaceMacRequest(
            network="blue", container_id="c1", ifname="eth1", netns=netns, mac=mac, expect_revision=expect
        )
        try:
            await servicer.SetInterfaceMac(request, context)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    assert await set_mac(first.revision, netns="/run/y") == grpc.StatusCode.FAILED_PRECONDITION  # another netns
    assert await set_mac(first.revision, mac="03:00:00:00:00:01") == grpc.StatusCode.INVALID_ARGUMENT
    assert await set_mac(first.revision) == grpc.StatusCode.OK
    now = store.interfaces[key]
    assert (now.mac, list(now.ips), now.netns) == ("02:42:00:00:00:42", ["192.168.0.5/32"], "/run/x")
    assert await set_mac(first.revision) == grpc.StatusCode.FAILED_PRECONDITION  # a newer record is kept
    before = store.revision
    assert await set_mac(now.revision) == grpc.StatusCode.OK and store.revision == before  # same MAC: no change
    forget = catalog_pb2.ForgetInterfaceRequest(network="blue", container_id="c1", ifname="eth1")
    await servicer.ForgetInterface(forget, context)
    assert await set_mac(now.revision, mac="02:42:00:00:00:43") == grpc.StatusCode.FAILED_PRECONDITION
    assert key not in store.interfaces  # a DEL is not undone
    bad = catalog_pb2.PodInterface()
    bad.CopyFrom(iface)
    bad.mac = "03:00:00:00:00:01"
    with pytest.raises(grpc.aio.AioRpcError, match=r"interface\.mac"):
        await servicer.RecordInterface(catalog_pb2.RecordInterfaceRequest(interface=bad), context)
