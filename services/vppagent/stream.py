"""The agent's link to netmgr: register this node, then follow the desired-state stream forever."""

from __future__ import annotations

import asyncio
import logging

import grpc
from multinet.v1 import agent_pb2, agent_pb2_grpc, catalog_pb2, catalog_pb2_grpc

from services.common import rpc

from .agent import NodeAgent

log = logging.getLogger("multinet.vppagent.stream")


async def follow_desired_state(agent: NodeAgent, channels: rpc.Channels, target: str) -> None:
    catalog = channels.stub(catalog_pb2_grpc.CatalogStub, target)
    desired = channels.stub(agent_pb2_grpc.DesiredStateStub, target)
    node = catalog_pb2.Node(name=agent.settings.node, underlay_ip=agent.settings.underlay_ip)
    delay = 0.05
    while True:
        try:
            await catalog.RegisterNode(catalog_pb2.RegisterNodeRequest(node=node))
            async for update in desired.Watch(agent_pb2.WatchDesiredStateRequest(node=agent.settings.node)):
                agent.on_update(update)
                delay = 0.05
        except grpc.aio.AioRpcError as exc:
            log.warning("desired-state stream interrupted", extra={"code": exc.code().name, "details": exc.details()})
        except Exception:  # the stream is the agent's lifeline: log, back off, follow it again
            log.exception("desired-state stream failed")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
