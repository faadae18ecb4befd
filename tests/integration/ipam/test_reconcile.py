"""Reconciliation against a Catalog served over gRPC: vanished interfaces are released, live ones never (matched
on network, container id and ifname, not on the pod name), young ones wait for the grace period."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from multinet.v1 import catalog_pb2, ipam_pb2

from services.common import rpc
from services.ipam.reconcile import Reconciler
from tests.integration.ipam.conftest import Served, serve
from tests.integration.ipam.test_grpc_api import allocate

pytestmark = pytest.mark.integration
RANGE = {"range": "10.0.0.0/24"}


class FakeCatalog:
    """Only ListPodInterfaces, over a generic handler; `interfaces` is what the catalog currently records."""

    def __init__(self) -> None:
        self.interfaces: list[catalog_pb2.PodInterface] = []
        self.calls = 0

    async def list_pod_interfaces(self, request: catalog_pb2.ListRequest, context: Any) -> Any:
        self.calls += 1
        return catalog_pb2.ListPodInterfacesResponse(interfaces=self.interfaces)

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        method = grpc.unary_unary_rpc_method_handler(
            self.list_pod_interfaces,
            request_deserializer=catalog_pb2.ListRequest.FromString,
            response_serializer=catalog_pb2.ListPodInterfacesResponse.SerializeToString,
        )
        return grpc.method_handlers_generic_handler("multinet.v1.Catalog", {"ListPodInterfaces": method})


@pytest.fixture
async def catalog(workdir: Path) -> AsyncIterator[tuple[FakeCatalog, str]]:
    fake = FakeCatalog()
    target = f"unix:{workdir / 'catalog.sock'}"
    server = await rpc.start_server([lambda s: s.add_generic_rpc_handlers((fake.handler(),))], [target])
    try:
        yield fake, target
    finally:
        await server.stop(None)


def interface(network: str, cid: str, pod: str) -> catalog_pb2.PodInterface:
    return catalog_pb2.PodInterface(
        network=network, container_id=cid, ifname="eth0", pod=catalog_pb2.PodRef(namespace="default", name=pod)
    )


async def owners(ipam: Served) -> list[tuple[str, str]]:
    listed = await ipam.stub.ListReservations(ipam_pb2.ListReservationsRequest())
    return sorted((r.network, r.owner.container_id) for r in listed.reservations)


async def test_vanished_released_live_kept_young_spared(
    store_url: str, workdir: Path, catalog: tuple[FakeCatalog, str]
) -> None:
    fake, target = catalog
    async with serve(store_url, workdir / "ipam.sock") as ipam:
        # web-0 was re-created: same pod name, new container id. Only the new one is live, and only on blue.
        for network, cid in (("blue", "ctr-old"), ("blue", "ctr-new"), ("red", "ctr-new")):
            await ipam.stub.Allocate(allocate(network, RANGE, cid))
        fake.interfaces = [interface("blue", "ctr-new", "web-0")]
        now = time.time()

        young = Reconciler(ipam.servicer.core, target, grace=120, clock=lambda: now + 60)
        try:
            assert await young.run_once() == []  # vanished, but not older than the grace period yet
        finally:
            await young.aclose()
        assert len(await owners(ipam)) == 3

        old = Reconciler(ipam.servicer.core, target, grace=120, clock=lambda: now + 200)
        try:
            released = await old.run_once()
        finally:
            await old.aclose()
        assert sorted((h.key.network, h.key.container_id) for h in released) == [
            ("blue", "ctr-old"),
            ("red", "ctr-new"),
        ]
        assert await owners(ipam) == [("blue", "ctr-new")]


async def test_unreachable_catalog_releases_nothing(store_url: str, workdir: Path) -> None:
    async with serve(store_url, workdir / "ipam.sock") as ipam:
        await ipam.stub.Allocate(allocate("blue", RANGE, "c"))
        reconciler = Reconciler(ipam.servicer.core, f"unix:{workdir / 'nobody.sock'}", grace=0)
        try:
            with pytest.raises(grpc.aio.AioRpcError):
                await reconciler.run_once()
        finally:
            await reconciler.aclose()
        assert await owners(ipam) == [("blue", "c")]


async def test_periodic_reconcile_runs_from_the_command_line_settings(
    workdir: Path, catalog: tuple[FakeCatalog, str]
) -> None:
    fake, target = catalog
    async with serve(f"sqlite:{workdir / 'ipam.db'}", workdir / "ipam.sock") as ipam:
        await ipam.stub.Allocate(allocate("blue", RANGE, "live"))
        await ipam.stub.Allocate(allocate("blue", RANGE, "gone"))
        fake.interfaces = [interface("blue", "live", "p")]
        reconciler = Reconciler(ipam.servicer.core, target, interval=0.05, grace=0)
        reconciler.start()
        try:
            deadline = time.monotonic() + 10
            while await owners(ipam) != [("blue", "live")]:
                assert time.monotonic() < deadline, "periodic reconcile did not release the vanished reservation"
                await asyncio.sleep(0.05)  # polling until the deadline
            assert fake.calls >= 1
        finally:
            await reconciler.aclose()
