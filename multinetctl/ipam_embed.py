"""The IPAM service inside the embedded process: its own gRPC server on its own socket, as when separate."""

from __future__ import annotations

import grpc

from services.common import local, rpc
from services.ipam import IpamServicer, build_ipam


class EmbeddedIpam:
    def __init__(self, listen: str, store_url: str, catalog_target: str) -> None:
        self.listen = listen
        self.store_url = store_url
        self.catalog_target = catalog_target
        self._servicer: IpamServicer | None = None
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        self._servicer = await build_ipam(self.store_url, self.catalog_target)
        self._server = await rpc.start_server([self._servicer.register], [self.listen])
        local.register(self.listen, self._servicer)

    async def aclose(self) -> None:
        if self._servicer is not None:
            local.unregister(self.listen, self._servicer)
        if self._server is not None:
            await self._server.stop(grace=1.0)
        if self._servicer is not None:
            await self._servicer.aclose()
