"""gRPC edge of the CNI front door (multinet.v1.Cni): the same dispatcher the local transport uses."""

from __future__ import annotations

import grpc
from multinet.v1 import cni_pb2, cni_pb2_grpc

from services.common.rpc import Context

from .dispatch import Dispatcher


class CniServicer(cni_pb2_grpc.CniServicer):
    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    def register(self, server: grpc.aio.Server) -> None:
        cni_pb2_grpc.add_CniServicer_to_server(self, server)

    async def Invoke(self, request: cni_pb2.CniInvocation, context: Context) -> cni_pb2.CniOutcome:
        status, stdout, failure = await self._dispatcher.invoke(dict(request.env), request.stdin)
        outcome = cni_pb2.CniOutcome(exit_code=status, stdout=stdout)
        if failure is not None:
            outcome.error.CopyFrom(cni_pb2.CniError(code=int(failure.code), msg=failure.msg, details=failure.details))
        return outcome
