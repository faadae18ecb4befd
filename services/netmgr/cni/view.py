"""The CNI front door's local copy of the catalog: networks, attachment definitions, and this node's pod
interfaces. Filled by listing, then kept current by the Events stream; until the first listing completes the
front door answers "try again later" (CNI code 11) instead of guessing."""

from __future__ import annotations

import asyncio
import logging

import grpc
from multinet.v1 import catalog_pb2, catalog_pb2_grpc, events_pb2, events_pb2_grpc

log = logging.getLogger("multinet.netmgr.cni.view")
E = events_pb2
InterfaceKey = tuple[str, str, str]


class CatalogView:
    def __init__(
        self, catalog: catalog_pb2_grpc.CatalogAsyncStub, events: events_pb2_grpc.EventsAsyncStub, node: str
    ) -> None:
        self._catalog = catalog
        self._events = events
        self.node = node
        self.networks: dict[str, catalog_pb2.Network] = {}
        self.attachments: dict[str, catalog_pb2.AttachmentDefinition] = {}  # by name (and "namespace/name")
        self.interfaces: dict[InterfaceKey, catalog_pb2.PodInterface] = {}
        self.revision = 0
        self.synced = asyncio.Event()

    @property
    def in_sync(self) -> bool:
        return self.synced.is_set()

    async def run(self) -> None:
        """List then watch, forever; reconnects with backoff and resumes from the last revision seen."""
        delay = 0.05
        while True:
            try:
                if not self.in_sync:
                    await self._list()
                    delay = 0.05
                await self._watch()
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.OUT_OF_RANGE:
                    self.synced.clear()  # our position was trimmed from the log: list again
                log.warning("catalog stream interrupted", extra={"code": str(exc.code()), "details": exc.details()})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _list(self) -> None:
        nets = await self._catalog.ListNetworks(catalog_pb2.ListRequest())
        atts = await self._catalog.ListAttachments(catalog_pb2.ListRequest())
        ifaces = await self._catalog.ListPodInterfaces(catalog_pb2.ListRequest(node=self.node))
        self.networks = {n.name: n for n in nets.networks}
        self.attachments = {}
        for att in atts.attachments:
            self._put_attachment(att)
        self.interfaces = {(i.network, i.container_id, i.ifname): i for i in ifaces.interfaces}
        self.revision = min(nets.revision, atts.revision, ifaces.revision)
        self.synced.set()
        log.info("catalog view in sync", extra={"revision": self.revision, "networks": len(self.networks)})

    async def _watch(self) -> None:
        stream = self._events.WatchEvents(events_pb2.WatchEventsRequest(after_revision=self.revision))
        async for event in stream:
            self.apply(event)

    def apply(self, event: events_pb2.Event) -> None:
        kind = event.type
        if kind in (E.NETWORK_ADDED, E.NETWORK_CHANGED):
            self.networks[event.network.name] = event.network
        elif kind == E.NETWORK_REMOVED:
            self.networks.pop(event.network.name, None)
        elif kind in (E.ATTACHMENT_DEFINITION_ADDED, E.ATTACHMENT_DEFINITION_CHANGED):
            self._put_attachment(event.attachment)
        elif kind == E.ATTACHMENT_DEFINITION_REMOVED:
            att = event.attachment
            self.attachments.pop(f"{att.namespace}/{att.name}", None)
            if self.attachments.get(att.name, att).namespace == att.namespace:
                self.attachments.pop(att.name, None)
        elif kind in (E.POD_ATTACHED, E.POD_DETACHED) and event.interface.node == self.node:
            iface = event.interface
            key = (iface.network, iface.container_id, iface.ifname)
            if kind == E.POD_ATTACHED:
                self.interfaces[key] = iface
            else:
                self.interfaces.pop(key, None)
        self.revision = max(self.revision, event.revision)

    def _put_attachment(self, att: catalog_pb2.AttachmentDefinition) -> None:
        self.attachments[f"{att.namespace}/{att.name}"] = att
        self.attachments.setdefault(att.name, att)

    def network_for(self, network: str | None, config_name: str) -> catalog_pb2.Network | None:
        """The network a CNI config means: named explicitly, or through its attachment definition's name."""
        if network:
            return self.networks.get(network)
        att = self.attachments.get(config_name)
        return self.networks.get(att.network) if att is not None else None
