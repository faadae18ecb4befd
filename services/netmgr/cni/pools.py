"""Pool pressure: after ADDs and DELs, the front door asks IPAM how full the network's pool is (PoolStatus) and
reports it to the catalog (ReportPoolUsage), which writes a POOL_PRESSURE event when the level changes.

In the background and coalesced per network: the CNI path never waits for it, and a burst of ADDs on one network
costs one PoolStatus + one report once the burst's calls have returned. Services stay decoupled: IPAM only answers
its existing PoolStatus, the catalog owns the thresholds and the event log.

Each network is measured with the IPAM configuration of its most recent ADD (attachments of one network normally
share the network's range; when their ranges differ, the level follows the attachment used last)."""

from __future__ import annotations

import asyncio
import logging

import grpc
from multinet.v1 import catalog_pb2, ipam_pb2

from .backends import DEADLINE_S, Backends

log = logging.getLogger("multinet.netmgr.cni.pools")
_CONFIG_LIMIT = 4096


class PoolReporter:
    def __init__(self, backends: Backends) -> None:
        self._backends = backends
        self._configs: dict[str, catalog_pb2.IpamConfig] = {}
        self._pending: dict[str, None] = {}  # insertion-ordered set
        self._wake = asyncio.Event()
        self.reports = 0  # how many reports reached the catalog (for tests and debugging)

    def poke(self, network: str, config: catalog_pb2.IpamConfig | None = None) -> None:
        """Measure `network` again soon (with `config`, else the configuration it was last measured with)."""
        if config is not None:
            if len(self._configs) >= _CONFIG_LIMIT and network not in self._configs:
                self._configs.clear()
            self._configs[network] = config
        if network in self._configs:
            self._pending[network] = None
            self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                network = next(iter(self._pending))
                del self._pending[network]
                await self._report(network)

    async def _report(self, network: str) -> None:
        config = self._configs.get(network)
        if config is None:
            return
        try:
            status = await self._backends.ipam.PoolStatus(
                ipam_pb2.PoolStatusRequest(network=network, config=config), timeout=DEADLINE_S
            )
            usage = catalog_pb2.PoolUsage(
                network=network, size=status.size, reserved=status.reserved, exhausted=status.exhausted
            )
            await self._backends.catalog.ReportPoolUsage(
                catalog_pb2.ReportPoolUsageRequest(usage=usage), timeout=DEADLINE_S
            )
            self.reports += 1
        except grpc.aio.AioRpcError as exc:
            # the next ADD or DEL on this network measures again; nothing else depends on this report
            log.warning("pool usage not reported", extra={"network": network, "error": exc.details()})
