"""Calls from the CNI front door to the other services, with their gRPC failures mapped to CNI error codes."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

import grpc
from multinet.v1 import agent_pb2_grpc, catalog_pb2_grpc, events_pb2_grpc, ipam_pb2_grpc

from .errors import CniFailure, Code

T = TypeVar("T")
DEADLINE_S = 10.0  # a kubelet gives a CNI call minutes; a stuck service must still not hang it forever

_TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}


@dataclass(frozen=True, slots=True)
class Backends:
    catalog: catalog_pb2_grpc.CatalogAsyncStub
    events: events_pb2_grpc.EventsAsyncStub
    ipam: ipam_pb2_grpc.IpamAsyncStub
    agent: agent_pb2_grpc.AgentAsyncStub


async def call(service: str, coro: Awaitable[T], codes: dict[grpc.StatusCode, Code] | None = None) -> T:
    """Await one RPC; map its failure to a CniFailure that names the service and what it said."""
    try:
        return await coro
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        mapped = (codes or {}).get(code)
        details = exc.details() or code.name
        if mapped is not None:
            raise CniFailure(mapped, details) from None
        if code in _TRANSIENT:
            raise CniFailure(
                Code.TRY_AGAIN_LATER,
                f"{service} is not reachable, try again later",
                f"{service}: {code.name}: {details}",
            ) from None
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            raise CniFailure(Code.INVALID_CONFIG, details) from None
        raise CniFailure(
            Code.DATAPLANE_FAILURE if service == "agent" else Code.IO_FAILURE, f"{service} failed: {details}"
        ) from None
