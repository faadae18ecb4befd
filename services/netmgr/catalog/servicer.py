"""gRPC edge of the catalog: Catalog, DesiredState and Events services over one CatalogStore."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc
from multinet.v1 import (
    agent_pb2,
    agent_pb2_grpc,
    catalog_pb2,
    catalog_pb2_grpc,
    events_pb2,
    events_pb2_grpc,
)

from services.common import validate as fields
from services.common.rpc import Context, ServiceError, abort, invalid
from services.common.whereabouts import parse_ipam_block

from . import apply, pools, streams
from .store import CatalogStore, Change
from .validate import ObjectError

log = logging.getLogger("multinet.netmgr.catalog")
E = events_pb2


class CatalogServicer(
    catalog_pb2_grpc.CatalogServicer, agent_pb2_grpc.DesiredStateServicer, events_pb2_grpc.EventsServicer
):
    def __init__(self, store: CatalogStore) -> None:
        self.store = store

    def register(self, server: grpc.aio.Server) -> None:
        catalog_pb2_grpc.add_CatalogServicer_to_server(self, server)
        agent_pb2_grpc.add_DesiredStateServicer_to_server(self, server)
        events_pb2_grpc.add_EventsServicer_to_server(self, server)

    # --------------------------------------------------------------------------------------- networks, NADs
    async def Apply(self, request: catalog_pb2.ApplyRequest, context: Context) -> catalog_pb2.ApplyResponse:
        try:
            plan = apply.plan_apply(self.store, request, parse_ipam_block)
        except (ObjectError, ValueError) as exc:
            await abort(context, invalid(str(exc)))
        revision = self.store.revision if request.dry_run else self.store.commit(plan.changes)
        if plan.changes and not request.dry_run:
            log.info(
                "catalog applied",
                extra={"objects_created": plan.created, "objects_updated": plan.updated, "revision": revision},
            )
        return catalog_pb2.ApplyResponse(
            created=plan.created, updated=plan.updated, unchanged=plan.unchanged, revision=revision
        )

    async def Delete(self, request: catalog_pb2.DeleteRequest, context: Context) -> catalog_pb2.DeleteResponse:
        changes, deleted = apply.plan_delete(self.store, request)
        revision = self.store.commit(changes)
        if deleted:
            log.info("catalog deleted", extra={"deleted": deleted, "revision": revision})
        return catalog_pb2.DeleteResponse(deleted=deleted, revision=revision)

    async def ListNetworks(
        self, request: catalog_pb2.ListRequest, context: Context
    ) -> catalog_pb2.ListNetworksResponse:
        nets = [n for name, n in sorted(self.store.networks.items()) if not request.network or name == request.network]
        return catalog_pb2.ListNetworksResponse(networks=nets, revision=self.store.revision)

    async def ListAttachments(
        self, request: catalog_pb2.ListRequest, context: Context
    ) -> catalog_pb2.ListAttachmentsResponse:
        atts = [
            a for _, a in sorted(self.store.attachments.items()) if not request.network or a.network == request.network
        ]
        return catalog_pb2.ListAttachmentsResponse(attachments=atts, revision=self.store.revision)

    async def ListPodInterfaces(
        self, request: catalog_pb2.ListRequest, context: Context
    ) -> catalog_pb2.ListPodInterfacesResponse:
        ifaces = [
            i
            for _, i in sorted(self.store.interfaces.items())
            if (not request.network or i.network == request.network) and (not request.node or i.node == request.node)
        ]
        return catalog_pb2.ListPodInterfacesResponse(interfaces=ifaces, revision=self.store.revision)

    # --------------------------------------------------------------------------------------- nodes
    async def RegisterNode(
        self, request: catalog_pb2.RegisterNodeRequest, context: Context
    ) -> catalog_pb2.RegisterNodeResponse:
        node = request.node
        try:
            fields.dns1123_subdomain("node.name", node.name)
            if node.underlay_ip:
                fields.address("node.underlay_ip", node.underlay_ip)
        except fields.FieldError as exc:
            await abort(context, invalid(str(exc)))
        current = self.store.nodes.get(node.name)
        if current is not None and current.underlay_ip == node.underlay_ip:
            return catalog_pb2.RegisterNodeResponse(revision=self.store.revision)
        clean = catalog_pb2.Node(name=node.name, underlay_ip=node.underlay_ip)
        revision = self.store.commit([Change("nodes", (node.name,), clean, E.NODE_ADDED)])
        log.info("node registered", extra={"node": node.name, "underlay": node.underlay_ip})
        return catalog_pb2.RegisterNodeResponse(revision=revision)

    async def RemoveNode(
        self, request: catalog_pb2.RemoveNodeRequest, context: Context
    ) -> catalog_pb2.RemoveNodeResponse:
        current = self.store.nodes.get(request.name)
        if current is None:
            return catalog_pb2.RemoveNodeResponse(revision=self.store.revision)
        changes = [
            Change("interfaces", k, None, E.POD_DETACHED, i)
            for k, i in self.store.interfaces.items()
            if i.node == request.name
        ]
        changes.append(Change("nodes", (request.name,), None, E.NODE_REMOVED, current))
        return catalog_pb2.RemoveNodeResponse(revision=self.store.commit(changes))

    async def ListNodes(self, request: catalog_pb2.ListRequest, context: Context) -> catalog_pb2.ListNodesResponse:
        return catalog_pb2.ListNodesResponse(
            nodes=[n for _, n in sorted(self.store.nodes.items())], revision=self.store.revision
        )

    # --------------------------------------------------------------------------------------- pod interfaces
    async def RecordInterface(
        self, request: catalog_pb2.RecordInterfaceRequest, context: Context
    ) -> catalog_pb2.RecordInterfaceResponse:
        iface = request.interface
        try:
            _check_interface(iface, self.store)
        except ServiceError as exc:
            await abort(context, exc)
        key = (iface.network, iface.container_id, iface.ifname)
        revision = self.store.commit([Change("interfaces", key, iface, E.POD_ATTACHED)])
        return catalog_pb2.RecordInterfaceResponse(revision=revision)

    async def SetInterfaceMac(
        self, request: catalog_pb2.SetInterfaceMacRequest, context: Context
    ) -> catalog_pb2.RecordInterfaceResponse:
        key = (request.network, request.container_id, request.ifname)
        problem = fields.unicast_mac_problem(request.mac)
        if problem:
            await abort(context, invalid(f"mac: {problem}"))
        current = self.store.interfaces.get(key)
        if current is None or current.revision != request.expect_revision or current.netns != request.netns:
            found = "gone" if current is None else f"at revision {current.revision} in {current.netns}"
            seen = f"revision {request.expect_revision} in {request.netns}"
            why = f"interface {'/'.join(key)}: saw {seen}, now {found}"
            await abort(context, ServiceError(grpc.StatusCode.FAILED_PRECONDITION, why))
        if current.mac.lower() == request.mac.lower():
            return catalog_pb2.RecordInterfaceResponse(revision=current.revision)
        updated = catalog_pb2.PodInterface()
        updated.CopyFrom(current)
        updated.mac = request.mac.lower()
        # POD_ATTACHED is an upsert for subscribers: the interface's record (network-status) changed
        revision = self.store.commit([Change("interfaces", key, updated, E.POD_ATTACHED)])
        return catalog_pb2.RecordInterfaceResponse(revision=revision)

    async def ForgetInterface(
        self, request: catalog_pb2.ForgetInterfaceRequest, context: Context
    ) -> catalog_pb2.ForgetInterfaceResponse:
        key = (request.network, request.container_id, request.ifname)
        current = self.store.interfaces.get(key)
        if current is None:
            return catalog_pb2.ForgetInterfaceResponse(existed=False, revision=self.store.revision)
        revision = self.store.commit([Change("interfaces", key, None, E.POD_DETACHED, current)])
        return catalog_pb2.ForgetInterfaceResponse(existed=True, revision=revision)

    async def ReportPoolUsage(
        self, request: catalog_pb2.ReportPoolUsageRequest, context: Context
    ) -> catalog_pb2.ReportPoolUsageResponse:
        usage = request.usage
        if usage.reserved > usage.size:
            await abort(context, invalid(f"usage.reserved: {usage.reserved} is more than usage.size {usage.size}"))
        change = pools.plan_report(self.store, usage)
        if change is None:
            return catalog_pb2.ReportPoolUsageResponse(changed=False, revision=self.store.revision)
        revision = self.store.commit([change])
        log.info(
            "pool pressure",
            extra={"network": usage.network, "reserved": usage.reserved, "size": usage.size, "revision": revision},
        )
        return catalog_pb2.ReportPoolUsageResponse(changed=True, revision=revision)

    # --------------------------------------------------------------------------------------- streams
    async def Watch(
        self, request: agent_pb2.WatchDesiredStateRequest, context: Context
    ) -> AsyncIterator[agent_pb2.DesiredStateUpdate]:
        log.info("desired-state subscriber", extra={"node": request.node})
        async for update in streams.desired_state(self.store):
            yield update

    async def WatchEvents(
        self, request: events_pb2.WatchEventsRequest, context: Context
    ) -> AsyncIterator[events_pb2.Event]:
        # headers at once: a subscriber knows it is connected before the first event (which may take long)
        await context.send_initial_metadata(())
        try:
            async for event in streams.events(self.store, request.after_revision, frozenset(request.types)):
                yield event
        except streams.TrimmedError as exc:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, str(exc))


def _check_interface(iface: catalog_pb2.PodInterface, store: CatalogStore) -> None:
    if iface.network not in store.networks:
        raise invalid(f"interface.network: unknown network {iface.network!r}")
    for name, value in (("container_id", iface.container_id), ("ifname", iface.ifname), ("node", iface.node)):
        if not value:
            raise invalid(f"interface.{name}: is required")
    problem = fields.unicast_mac_problem(iface.mac) if iface.mac else None
    if problem:
        raise invalid(f"interface.mac: {problem}")
    try:
        for i, ip in enumerate(iface.ips):
            fields.interface(f"interface.ips[{i}]", ip)
    except fields.FieldError as exc:
        raise invalid(str(exc)) from None
