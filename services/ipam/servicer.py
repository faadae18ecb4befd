"""The gRPC edge of IPAM (`multinet.v1.Ipam`): validates every incoming field, calls the core, maps errors.

invalid field → INVALID_ARGUMENT naming it; pool exhausted → RESOURCE_EXHAUSTED; requested address taken →
ALREADY_EXISTS; store unavailable → UNAVAILABLE."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from multinet.v1 import ipam_pb2, ipam_pb2_grpc

from services.common import telemetry
from services.common.rpc import ServiceError, abort, invalid
from services.common.validate import FieldError, container_id_problem, dns1123_label, ifname_problem
from services.ipam.config import plan_of
from services.ipam.core import IpamCore
from services.ipam.errors import AddressTaken, IpamError, PoolExhausted, StoreUnavailable
from services.ipam.model import Holding, Lease, OwnerKey
from services.ipam.reconcile import Reconciler

Context = grpc.aio.ServicerContext[Any, Any]
Req = TypeVar("Req")
Resp = TypeVar("Resp")
U64_MAX = (1 << 64) - 1
# CNI spec: a container id is alphanumerics plus '_', '.', '-'; an interface name is a Linux one (< 16 bytes).
_tracer = telemetry.tracer("multinet.ipam")


def _mapped(
    method: Callable[[IpamServicer, Req, Context], Awaitable[Resp]],
) -> Callable[[IpamServicer, Req, Context], Awaitable[Resp]]:
    @functools.wraps(method)
    async def handler(self: IpamServicer, request: Req, context: Context) -> Resp:
        try:
            return await method(self, request, context)
        except (FieldError, IpamError) as exc:
            await abort(context, service_error(exc))

    return handler


def service_error(exc: FieldError | IpamError) -> ServiceError:
    if isinstance(exc, FieldError):
        return invalid(str(exc))
    if isinstance(exc, PoolExhausted):
        return ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
    if isinstance(exc, AddressTaken):
        return ServiceError(grpc.StatusCode.ALREADY_EXISTS, str(exc))
    if isinstance(exc, StoreUnavailable):
        return ServiceError(grpc.StatusCode.UNAVAILABLE, f"IPAM store unavailable, nothing was changed: {exc}")
    return ServiceError(grpc.StatusCode.INTERNAL, str(exc))


def owner_key(network: str, owner: ipam_pb2.Owner, field: str = "owner") -> OwnerKey:
    if not owner.container_id:
        raise FieldError(f"{field}.container_id", "is required (the CNI container id)")
    if problem := container_id_problem(owner.container_id):
        raise FieldError(f"{field}.container_id", f"{owner.container_id!r} {problem}")
    if not owner.ifname:
        raise FieldError(f"{field}.ifname", "is required (the interface name in the pod)")
    if problem := ifname_problem(owner.ifname):
        raise FieldError(f"{field}.ifname", f"{owner.ifname!r} {problem}")
    return OwnerKey(network, owner.container_id, owner.ifname)


def _allocation(lease: Lease) -> ipam_pb2.Allocation:
    return ipam_pb2.Allocation(address=lease.cidr, gateway=lease.gateway, range_index=lease.range_index)


def _reservations(held: Holding) -> list[ipam_pb2.Reservation]:
    owner = ipam_pb2.Owner(container_id=held.key.container_id, ifname=held.key.ifname, pod_ref=held.pod_ref)
    return [
        ipam_pb2.Reservation(network=held.key.network, address=lease.ip, owner=owner, created_unix_ms=held.created_ms)
        for lease in held.leases
    ]


def _optional_network(value: str) -> str | None:
    return dns1123_label("network", value) if value else None


class IpamServicer(ipam_pb2_grpc.IpamServicer):
    def __init__(self, core: IpamCore, reconciler: Reconciler | None = None) -> None:
        self.core = core
        self.reconciler = reconciler

    def register(self, server: grpc.aio.Server) -> None:
        ipam_pb2_grpc.add_IpamServicer_to_server(self, server)

    async def aclose(self) -> None:
        if self.reconciler is not None:
            await self.reconciler.aclose()
        await self.core.aclose()

    @_mapped
    async def Allocate(self, request: ipam_pb2.AllocateRequest, context: Context) -> ipam_pb2.AllocateResponse:
        network = dns1123_label("network", request.network)
        owner = owner_key(network, request.owner)
        plan = plan_of(request.config, "config")
        with _tracer.start_as_current_span("ipam.allocate", attributes={"network": network}):
            result = await self.core.allocate(network, plan, owner, request.owner.pod_ref, list(request.requested_ips))
        return ipam_pb2.AllocateResponse(allocations=map(_allocation, result.leases), existing=result.existing)

    @_mapped
    async def Release(self, request: ipam_pb2.ReleaseRequest, context: Context) -> ipam_pb2.ReleaseResponse:
        network = dns1123_label("network", request.network)
        released = await self.core.release(owner_key(network, request.owner))
        return ipam_pb2.ReleaseResponse(released=[lease.ip for lease in released.leases] if released else [])

    @_mapped
    async def Check(self, request: ipam_pb2.CheckRequest, context: Context) -> ipam_pb2.CheckResponse:
        network = dns1123_label("network", request.network)
        held = await self.core.check(owner_key(network, request.owner))
        return ipam_pb2.CheckResponse(allocations=map(_allocation, held.leases) if held else [])

    @_mapped
    async def PoolStatus(self, request: ipam_pb2.PoolStatusRequest, context: Context) -> ipam_pb2.PoolStatusResponse:
        network = dns1123_label("network", request.network)
        status = self.core.status(network, plan_of(request.config, "config"))
        return ipam_pb2.PoolStatusResponse(
            size=min(status.size, U64_MAX), reserved=min(status.reserved, U64_MAX), exhausted=status.exhausted
        )

    @_mapped
    async def ListReservations(
        self, request: ipam_pb2.ListReservationsRequest, context: Context
    ) -> ipam_pb2.ListReservationsResponse:
        holdings = await self.core.holdings(_optional_network(request.network))
        return ipam_pb2.ListReservationsResponse(reservations=[r for h in holdings for r in _reservations(h)])

    @_mapped
    async def Gc(self, request: ipam_pb2.GcRequest, context: Context) -> ipam_pb2.GcResponse:
        # a keep list is always about one network: an empty network with an empty list would release everything
        network = dns1123_label("network", request.network)
        keys = [owner_key("", owner, f"keep[{i}]") for i, owner in enumerate(request.keep)]
        keep = {(k.container_id, k.ifname) for k in keys}
        released = await self.core.gc(network, lambda key: (key.container_id, key.ifname) in keep)
        return ipam_pb2.GcResponse(released=[r for h in released for r in _reservations(h)])
