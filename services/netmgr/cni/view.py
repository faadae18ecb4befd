"""The CNI front door's local copy of the catalog: networks, attachment definitions, and this node's pod
interfaces. Filled by listing, then kept current by the Events stream; until the first listing completes the
front door answers "try again later" (CNI code 11) instead of guessing."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc
from multinet.v1 import catalog_pb2, catalog_pb2_grpc, events_pb2, events_pb2_grpc

from services.common.validate import FieldError

from ..netconf import loads_lenient

log = logging.getLogger("multinet.netmgr.cni.view")
E = events_pb2
InterfaceKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a CNI configuration means: its network and, when one matches, its attachment definition."""

    network: catalog_pb2.Network
    attachment: catalog_pb2.AttachmentDefinition | None = None


class CatalogView:
    def __init__(
        self, catalog: catalog_pb2_grpc.CatalogAsyncStub, events: events_pb2_grpc.EventsAsyncStub, node: str
    ) -> None:
        self._catalog = catalog
        self._events = events
        self.node = node
        self.networks: dict[str, catalog_pb2.Network] = {}
        # attachment definitions by "namespace/name"; CNI configs name them by name, or by their config's "name"
        self.attachments: dict[str, catalog_pb2.AttachmentDefinition] = {}
        self._config_names: dict[str, str] = {}  # "namespace/name" -> the "name" inside its spec.config
        self.interfaces: dict[InterfaceKey, catalog_pb2.PodInterface] = {}
        self.revision = 0
        self.synced = asyncio.Event()
        self.connected = False  # the watch stream is up now (in sync says the copy is whole, not that it is fresh)
        self.last_error = "no answer from the catalog yet"

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
                self.connected = False  # the catalog ended the stream (shutting down): reconnect, not in a hot loop
                self.last_error = "the catalog closed the event stream"
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except grpc.aio.AioRpcError as exc:
                self.connected = False
                self.last_error = f"{exc.code().name}: {exc.details()}"
                if exc.code() == grpc.StatusCode.OUT_OF_RANGE:
                    self.synced.clear()  # our position was trimmed from the log: list again
                log.warning("catalog stream interrupted", extra={"code": str(exc.code()), "details": exc.details()})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except Exception as exc:  # e.g. a target that is not a catalog: keep trying, never die silently
                self.connected = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("catalog view failed")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _list(self) -> None:
        nets = await self._catalog.ListNetworks(catalog_pb2.ListRequest())
        atts = await self._catalog.ListAttachments(catalog_pb2.ListRequest())
        ifaces = await self._catalog.ListPodInterfaces(catalog_pb2.ListRequest(node=self.node))
        self.networks = {n.name: n for n in nets.networks}
        self.attachments = {}
        self._config_names = {}
        for att in atts.attachments:
            self._put_attachment(att)
        self.interfaces = {(i.network, i.container_id, i.ifname): i for i in ifaces.interfaces}
        self.revision = min(nets.revision, atts.revision, ifaces.revision)
        self.synced.set()
        log.info("catalog view in sync", extra={"revision": self.revision, "networks": len(self.networks)})

    async def _watch(self) -> None:
        stream = self._events.WatchEvents(events_pb2.WatchEventsRequest(after_revision=self.revision))
        wait = getattr(stream, "wait_for_connection", None)  # a gRPC call has it; an in-process stream is connected
        if wait is not None:
            await wait()
        self.connected = True
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
            self._config_names.pop(f"{att.namespace}/{att.name}", None)
        elif kind in (E.POD_ATTACHED, E.POD_DETACHED) and event.interface.node == self.node:
            iface = event.interface
            key = (iface.network, iface.container_id, iface.ifname)
            if kind == E.POD_ATTACHED:
                self.interfaces[key] = iface
            else:
                self.interfaces.pop(key, None)
        self.revision = max(self.revision, event.revision)

    def _put_attachment(self, att: catalog_pb2.AttachmentDefinition) -> None:
        key = f"{att.namespace}/{att.name}"
        self.attachments[key] = att
        try:
            name = loads_lenient(att.config_json, "spec.config").get("name")
        except FieldError:
            name = None
        if isinstance(name, str) and name:
            self._config_names[key] = name
        else:
            self._config_names.pop(key, None)

    def attachment_for(self, config_name: str, namespace: str = "") -> catalog_pb2.AttachmentDefinition | None:
        """The attachment definition a CNI config name means: "namespace/name", an attachment definition's name
        (what `install-cni` writes), or the "name" inside its spec.config (what Multus passes when it hands the
        definition's config to the plugin). The pod's namespace first, then "default", then any single match."""
        if "/" in config_name:
            return self.attachments.get(config_name)
        for matches in (
            [a for a in self.attachments.values() if a.name == config_name],
            [a for k, a in self.attachments.items() if self._config_names.get(k) == config_name],
        ):
            for preferred in (namespace, "default"):
                for att in matches:
                    if preferred and att.namespace == preferred:
                        return att
            if len(matches) == 1:
                return matches[0]
        return None

    def resolve(self, network: str | None, config_name: str, namespace: str = "") -> Resolved | None:
        """The network a CNI config means: named explicitly, or through its attachment definition."""
        att = self.attachment_for(config_name, namespace)
        if network:
            net = self.networks.get(network)
            if net is None:
                return None
            return Resolved(net, att if att is not None and att.network == network else None)
        if att is None:
            return None
        net = self.networks.get(att.network)
        return Resolved(net, att) if net is not None else None

    def network_for(self, network: str | None, config_name: str, namespace: str = "") -> catalog_pb2.Network | None:
        resolved = self.resolve(network, config_name, namespace)
        return resolved.network if resolved is not None else None
