"""The MAC a pod side really has, reported to the catalog: a chained plugin (`tuning` with `mac`) may change it
after multinet's ADD, and the catalog's record (network-status, `multinetctl get pods`, the Events stream) should
say what the pod has. The record is re-written only if it is still the one the agent saw (its revision), so a
report never brings back an interface a concurrent CNI DEL removed."""

from __future__ import annotations

import logging

import grpc
from multinet.v1 import catalog_pb2, catalog_pb2_grpc

from services.common import rpc

from .agent import NodeAgent

log = logging.getLogger("multinet.vppagent.macreport")
TIMEOUT_S = 5.0


async def report_pod_macs(agent: NodeAgent, channels: rpc.Channels, target: str) -> None:
    catalog = channels.stub(catalog_pb2_grpc.CatalogStub, target)
    while True:
        key, mac = await agent.pod_macs.get()
        seen = agent.state.interfaces.get(key)
        if seen is None or not seen.revision or seen.mac.lower() == mac.lower():
            continue  # unknown here yet, or the catalog already says so
        updated = catalog_pb2.PodInterface()
        updated.CopyFrom(seen)
        updated.mac = mac
        request = catalog_pb2.RecordInterfaceRequest(interface=updated, expect_revision=seen.revision)
        try:
            await catalog.RecordInterface(request, timeout=TIMEOUT_S)
            log.info("pod MAC reported", extra={"interface": "/".join(key), "mac": mac})
        except grpc.aio.AioRpcError as exc:  # changed or gone meanwhile (or unreachable): a full resync tells again
            why = {"interface": "/".join(key), "code": exc.code().name, "why": exc.details()}
            log.info("pod MAC not reported", extra=why)
