"""IPAM as a process or as part of the embedded all-in-one: its servicer on its own gRPC server."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import grpc

from services.common import local, rpc

from . import DEFAULT_GRACE_PERIOD, DEFAULT_RECONCILE_INTERVAL, build_ipam
from .servicer import IpamServicer


@dataclass(frozen=True, slots=True)
class IpamConfig:
    listen: tuple[str, ...]
    store_url: str
    catalog_target: str | None = None
    reconcile_interval: float = DEFAULT_RECONCILE_INTERVAL
    grace_period: float = DEFAULT_GRACE_PERIOD


class IpamApp:
    def __init__(self, config: IpamConfig) -> None:
        self.config = config
        self.servicer: IpamServicer | None = None
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        self.servicer = await build_ipam(self.config.store_url, self.config.catalog_target,
                                         reconcile_interval=self.config.reconcile_interval,
                                         grace_period=self.config.grace_period)  # fmt: skip
        self._server = await rpc.start_server([self.servicer.register], self.config.listen)
        for address in self.config.listen:
            local.register(address, self.servicer)

    async def aclose(self) -> None:
        if self.servicer is not None:
            for address in self.config.listen:
                local.unregister(address, self.servicer)
        if self._server is not None:
            await self._server.stop(grace=2.0)
        if self.servicer is not None:
            await self.servicer.aclose()
        _remove_sockets(self.config.listen)


def _remove_sockets(addresses: tuple[str, ...]) -> None:
    for address in addresses:
        if address.startswith("unix:"):
            with contextlib.suppress(FileNotFoundError):
                Path(address.removeprefix("unix:")).unlink()
