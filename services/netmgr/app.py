"""netmgr as a process or as part of the embedded all-in-one: the catalog role (Catalog, DesiredState and
Events over a SQLite store) and/or the CNI role (the CNI front door of one node: gRPC Cni service plus the
local socket of the `multinet` executable)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
from multinet.v1 import agent_pb2_grpc, catalog_pb2_grpc, events_pb2_grpc, ipam_pb2_grpc

from services.common import local, rpc
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
        self._channels = rpc.Channels()
        self._registered: list[tuple[str, object]] = []
        self._local: LocalTransport | None = None
        self._tasks = TaskGroup()

    async def start(self) -> None:
        servicers: list[CatalogServicer | CniServicer] = []
        if self.config.database is not None:
            self.store = CatalogStore(self.config.database)
            servicers.append(CatalogServicer(self.store))
        dispatcher = self._build_cni() if self.config.cni is not None else None
        if dispatcher is not None:
            servicers.append(CniServicer(dispatcher))
        self._server = await rpc.start_server([s.register for s in servicers], self.config.listen)
        for servicer in servicers:
            for address in self.config.listen:
                local.register(address, servicer)
                self._registered.append((address, servicer))
        if dispatcher is not None and self.config.cni is not None and self.view is not None:
            self._tasks.spawn("catalog-view", self.view.run())
            if self.handler is not None:
                self._tasks.spawn("pool-reporter", self.handler.pools.run())
            self._local = LocalTransport(dispatcher, self.config.cni.local_socket)
            self._tasks.spawn("cni-socket", self._open_when_in_sync(self.view, self._local))

    @staticmethod
    async def _open_when_in_sync(view: CatalogView, transport: LocalTransport) -> None:
        """The plugin's socket appears once the front door holds the catalog: its existence means "ready" (until
        then the plugin answers "try again later", code 11, as it does when nothing listens)."""
        await view.synced.wait()
        await transport.start()

    def _build_cni(self) -> Dispatcher:
        role = self.config.cni
        assert role is not None
        backends = Backends(
            catalog=self._channels.stub(catalog_pb2_grpc.CatalogStub, role.catalog_target),
            events=self._channels.stub(events_pb2_grpc.EventsStub, role.catalog_target),
            ipam=self._channels.stub(ipam_pb2_grpc.IpamStub, role.ipam_target),
            agent=self._channels.stub(agent_pb2_grpc.AgentStub, role.agent_target),
        )
        self.view = CatalogView(backends.catalog, backends.events, role.node)
        self.handler = CniHandler(backends, self.view, role.node)
        return Dispatcher(self.handler)

    async def aclose(self) -> None:
        if self._local is not None:
            await self._local.close()
        await self._tasks.close()
        for address, servicer in self._registered:
            local.unregister(address, servicer)
        if self._server is not None:
            await self._server.stop(grace=1.0)
        await self._channels.close()
        if self.store is not None:
            self.store.close()
