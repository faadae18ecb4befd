"""The MAC a pod side really has, reported to the catalog: a chained plugin (`tuning` with `mac`) may change it
after multinet's ADD, and the catalog's record (network-status, `multinetctl get pods`, the Events stream) should
say what the pod has.

The driver tells the agent (NodeAgent.pod_macs, the latest per port); each report goes out as
Catalog.SetInterfaceMac against the record the agent holds (its revision and netns), so it never undoes a
concurrent DEL nor lands on another incarnation of the same port. A report waits while the agent's state has
no record for the port yet or the catalog answers that the record moved on (the agent's copy is behind: the
next desired-state update wakes it); it is dropped once done, once the record says that MAC, when the record is
another netns's, or after PENDING_S (the driver tells again at every full resync while it still differs)."""

from __future__ import annotations

import logging
import time

import grpc
from multinet.v1 import catalog_pb2, catalog_pb2_grpc

from services.common import rpc

from .agent import NodeAgent, PodMac
from .state import Key

log = logging.getLogger("multinet.vppagent.macreport")
TIMEOUT_S = 5.0
PENDING_S = 60.0


async def report_pod_macs(agent: NodeAgent, channels: rpc.Channels, target: str) -> None:
    catalog = channels.stub(catalog_pb2_grpc.CatalogStub, target)
    while True:
        await agent.pod_macs_changed.wait()
        agent.pod_macs_changed.clear()
        await report_pending(agent, catalog)


async def report_pending(agent: NodeAgent, catalog: catalog_pb2_grpc.CatalogAsyncStub) -> None:
    """One pass over the waiting reports."""
    for key, told in list(agent.pod_macs.items()):
        # (and not replaced by a newer one meanwhile)
        if await _settled(agent, catalog, key, told) and agent.pod_macs.get(key) is told:
            del agent.pod_macs[key]


async def _settled(agent: NodeAgent, catalog: catalog_pb2_grpc.CatalogAsyncStub, key: Key, told: PodMac) -> bool:
    seen = agent.state.interfaces.get(key)
    if time.monotonic() - told.since > PENDING_S:
        return True
    if seen is None or not seen.revision:
        return False  # not known here yet
    if seen.netns != told.netns or seen.mac.lower() == told.mac:
        return True  # another incarnation, or already recorded
    request = catalog_pb2.SetInterfaceMacRequest(
        network=key[0], container_id=key[1], ifname=key[2], netns=told.netns, mac=told.mac,
        expect_revision=seen.revision,
    )  # fmt: skip
    try:
        await catalog.SetInterfaceMac(request, timeout=TIMEOUT_S)
    except grpc.aio.AioRpcError as exc:
        why = {"interface": "/".join(key), "code": exc.code().name, "why": exc.details()}
        log.info("pod MAC not reported yet", extra=why)
        return exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED)  # retrying won't help
    log.info("pod MAC reported", extra={"interface": "/".join(key), "mac": told.mac})
    return True
