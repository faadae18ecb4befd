"""gRPC edge of the node agent (multinet.v1.Agent)."""

from __future__ import annotations

import grpc
from multinet.v1 import agent_pb2, agent_pb2_grpc

from services.common.rpc import Context, ServiceError, abort

from .agent import NodeAgent
from .errors import DataplaneError, InterfaceExists, InvalidSpec, NetnsNotFound
from .model import HOST_SIDE_MAC


def _status(exc: DataplaneError) -> ServiceError:
    if isinstance(exc, NetnsNotFound):
        return ServiceError(grpc.StatusCode.NOT_FOUND, str(exc))
    if isinstance(exc, InterfaceExists):
        return ServiceError(grpc.StatusCode.ALREADY_EXISTS, str(exc))
    if isinstance(exc, InvalidSpec):
        return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    return ServiceError(grpc.StatusCode.INTERNAL, str(exc))


class AgentServicer(agent_pb2_grpc.AgentServicer):
    def __init__(self, agent: NodeAgent) -> None:
        self.agent = agent

    def register(self, server: grpc.aio.Server) -> None:
        agent_pb2_grpc.add_AgentServicer_to_server(self, server)

    async def Attach(self, request: agent_pb2.AttachRequest, context: Context) -> agent_pb2.AttachResponse:
        try:
            result = await self.agent.attach(request.interface, request.network)
        except DataplaneError as exc:
            await abort(context, _status(exc))
        return agent_pb2.AttachResponse(
            host_ifname=result.host_ifname, mac=result.mac, mtu=result.mtu, host_mac=HOST_SIDE_MAC
        )

    async def Detach(self, request: agent_pb2.DetachRequest, context: Context) -> agent_pb2.DetachResponse:
        if not (request.network and request.container_id and request.ifname):
            await abort(
                context, ServiceError(grpc.StatusCode.INVALID_ARGUMENT, "network, container_id and ifname are required")
            )
        try:
            existed = await self.agent.detach(request.network, request.container_id, request.ifname, request.netns)
        except DataplaneError as exc:
            await abort(context, _status(exc))
        return agent_pb2.DetachResponse(existed=existed)

    async def CheckInterface(
        self, request: agent_pb2.CheckInterfaceRequest, context: Context
    ) -> agent_pb2.CheckInterfaceResponse:
        try:
            problems = await self.agent.check(request.interface, request.network)
        except DataplaneError as exc:
            await abort(context, _status(exc))
        return agent_pb2.CheckInterfaceResponse(ok=not problems, problems=problems)

    async def GetState(self, request: agent_pb2.AgentStateRequest, context: Context) -> agent_pb2.AgentStateResponse:
        agent = self.agent
        local = [i for i in agent.state.interfaces.values() if i.node == agent.settings.node]
        return agent_pb2.AgentStateResponse(
            node=agent.settings.node,
            driver=agent.driver.name,
            applied_revision=agent.applied_revision,
            in_sync=agent.in_sync,
            interfaces=local,
            networks=list(agent.state.networks.values()),
            remote_routes=sum(len(i.ips) for i in agent.state.interfaces.values() if i.node != agent.settings.node),
        )
