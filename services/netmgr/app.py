"""netmgr as a process or as part of the embedded all-in-one: the catalog role (Catalog, DesiredState and
Events over a SQLite store) and/or the CNI role (the CNI front door of one node: gRPC Cni service plus the
local socket of the `multinet` executable)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
from multinet.v1 import agent_pb2_grpc, catalog_pb2_grpc, events_pb2_grpc, ipam_pb2_grpc

from services.common import rpc
from services.common.lifecycle import TaskGroup

from .catalog.servicer import CatalogServicer
from .catalog.store import CatalogStore
from .cni.backends import Backends
from .cni.dispatch import Dispatcher
from .cni.handler import CniHandler
from .cni.local import LocalTransport
from .cni.servicer import CniServicer
from .cni.view import CatalogView


@dataclass(frozen=True, slots=True)
class CniRole:
    node: str
    catalog_target: str  # where the catalog role listens
    ipam_target: str
    agent_target: str  # this node's agent
    local_socket: Path  # for the `multinet` executable


@dataclass(frozen=True, slots=True)
class NetmgrConfig:
    listen: tuple[str, ...]
    database: Path | None = None  # catalog role when set
    cni: CniRole | None = None


class NetmgrApp:
    def __init__(self, config: NetmgrConfig) -> None:
        self.config = config
        self.store: CatalogStore | None = None
        self.view: CatalogView | None = None
        self.handler: CniHandler | None = None
        self._server: grpc.aio.Server | None = None
        self._channels: list[grpc.aio.Channel] = []
        self._local: LocalTransport | None = None
        self._tasks = TaskGroup()

    async def start(self) -> None:
        registrars: list[rpc.Registrar] = []
        if self.config.database is not None:
            self.store = CatalogStore(self.config.database)
            registrars.append(CatalogServicer(self.store).register)
        dispatcher = self._build_cni() if self.config.cni is not None else None
        if dispatcher is not None:
            registrars.append(CniServicer(dispatcher).register)
        self._server = await rpc.start_server(registrars, self.config.listen)
        if dispatcher is not None and self.config.cni is not None and self.view is not None:
            self._tasks.spawn("catalog-view", self.view.run())
            self._local = LocalTransport(dispatcher, self.config.cni.local_socket)
            await self._local.start()

    def _build_cni(self) -> Dispatcher:
        role = self.config.cni
        assert role is not None
        catalog_ch = self._channel(role.catalog_target)
        backends = Backends(
            catalog=catalog_pb2_grpc.CatalogStub(catalog_ch),
            events=events_pb2_grpc.EventsStub(catalog_ch),
            ipam=ipam_pb2_grpc.IpamStub(self._channel(role.ipam_target)),
            agent=agent_pb2_grpc.AgentStub(self._channel(role.agent_target)),
        )
        self.view = CatalogView(backends.catalog, backends.events, role.node)
        self.handler = CniHandler(backends, self.view, role.node)
        return Dispatcher(self.handler)

    def _channel(self, target: str) -> grpc.aio.Channel:
        channel = rpc.channel(target)
        self._channels.append(channel)
        return channel

    async def aclose(self) -> None:
        if self._local is not None:
            await self._local.close()
        await self._tasks.close()
        if self._server is not None:
            await self._server.stop(grace=1.0)
        for channel in self._channels:
            await channel.close(None)
        if self.store is not None:
            self.store.close()
