"""Periodic reconciliation against netmgr's catalog: release reservations whose pod interface no longer exists.

Never a live one: a reservation is matched on (network, container_id, ifname), never on the pod name (a re-created
StatefulSet pod has the same name and a new container id), and only reservations created more than a grace period
before the catalog was read are considered (ADD reserves before the catalog records the interface)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import grpc
from multinet.v1 import catalog_pb2, catalog_pb2_grpc

from services.common import rpc
from services.ipam.core import IpamCore
from services.ipam.errors import IpamError
from services.ipam.model import Holding, OwnerKey

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(
        self,
        core: IpamCore,
        catalog_target: str,
        interval: float = 60.0,
        grace: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._core = core
        self._channel = rpc.channel(catalog_target)
        self._catalog = catalog_pb2_grpc.CatalogStub(self._channel)
        self._interval = interval
        self._grace_ms = int(grace * 1000)
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="ipam-reconcile")

    async def run_once(self) -> list[Holding]:
        """One pass; raises grpc.aio.AioRpcError when the catalog cannot be read (then nothing is released)."""
        # The cut-off is taken before reading the catalog: whatever was reserved before it had its whole grace
        # period to be recorded, so the catalog read afterwards lists it if it is live.
        created_before_ms = int(self._clock() * 1000) - self._grace_ms
        answer = await self._catalog.ListPodInterfaces(catalog_pb2.ListRequest(), timeout=10)
        live = {OwnerKey(i.network, i.container_id, i.ifname) for i in answer.interfaces}
        released = await self._core.gc(None, live.__contains__, created_before_ms)
        for held in released:
            log.info(
                "released reservation of a vanished interface",
                extra={"network": held.key.network, "container_id": held.key.container_id,
                       "ifname": held.key.ifname, "addresses": [lease.ip for lease in held.leases]},
            )  # fmt: skip
        return released

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)  # the period of the reconcile, not synchronisation
            try:
                await self.run_once()
            except grpc.aio.AioRpcError as exc:
                log.warning("reconcile skipped: catalog unavailable", extra={"error": rpc.details_of(exc)})
            except IpamError as exc:
                log.warning("reconcile skipped: store unavailable", extra={"error": str(exc)})
            except Exception:
                log.exception("reconcile failed")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._channel.close(None)
