"""The agent's pod-MAC reports (services/vppagent/macreport.py) against a fake catalog that records the calls
and answers as told: what is sent, what waits for the agent's state, what is dropped."""

from __future__ import annotations

import time
from typing import cast

import grpc
import pytest
from multinet.v1 import agent_pb2, catalog_pb2, catalog_pb2_grpc

from services.common.local import rpc_error
from services.vppagent import macreport
from services.vppagent.agent import AgentSettings, NodeAgent, PodMac
from tests.unit.vppagent.test_agent_loop_fake_driver import FlakyFakeDriver

KEY = ("blue", "c1", "eth1")


class FakeCatalog:
    def __init__(self) -> None:
        self.sent: list[catalog_pb2.SetInterfaceMacRequest] = []
        self.answer: grpc.StatusCode = grpc.StatusCode.OK

    async def SetInterfaceMac(
        self,
        request: catalog_pb2.SetInterfaceMacRequest,
        timeout: float | None = None,  # noqa: ASYNC109 - the gRPC stub's signature
    ) -> catalog_pb2.RecordInterfaceResponse:
        self.sent.append(request)
        if self.answer != grpc.StatusCode.OK:
            raise rpc_error(self.answer, "as told")
        return catalog_pb2.RecordInterfaceResponse(revision=99)


def agent_with(*interfaces: catalog_pb2.PodInterface) -> NodeAgent:
    agent = NodeAgent(AgentSettings(node="n1", resync_interval_s=60), FlakyFakeDriver(0))
    agent.state.apply(agent_pb2.DesiredStateUpdate(snapshot=True, revision=7, interfaces=list(interfaces)))
    return agent


def record(mac: str = "02:00:00:00:00:01", netns: str = "/run/p", revision: int = 7) -> catalog_pb2.PodInterface:
    iface = catalog_pb2.PodInterface(network="blue", container_id="c1", ifname="eth1", node="n1", netns=netns)
    iface.mac, iface.revision = mac, revision
    return iface


async def report(agent: NodeAgent, catalog: FakeCatalog) -> None:
    await macreport.report_pending(agent, cast("catalog_pb2_grpc.CatalogAsyncStub", catalog))


async def test_a_report_waits_for_the_record_then_goes_out_against_its_revision_and_netns() -> None:
    agent, catalog = agent_with(), FakeCatalog()
    agent._pod_mac_seen(KEY, "/run/p", "02:42:00:00:00:42")
    await report(agent, catalog)
    assert catalog.sent == [] and KEY in agent.pod_macs  # the agent has no record of it yet
    agent.on_update(agent_pb2.DesiredStateUpdate(revision=8, interfaces=[record()]))
    assert agent.pod_macs_changed.is_set()  # the update wakes the reporter
    await report(agent, catalog)
    (sent,) = catalog.sent
    assert (sent.network, sent.container_id, sent.ifname) == KEY
    assert (sent.netns, sent.mac, sent.expect_revision) == ("/run/p", "02:42:00:00:00:42", 7)
    assert agent.pod_macs == {}


@pytest.mark.parametrize(
    ("answer", "kept"),
    [(grpc.StatusCode.FAILED_PRECONDITION, True), (grpc.StatusCode.UNAVAILABLE, True),
     (grpc.StatusCode.INVALID_ARGUMENT, False), (grpc.StatusCode.UNIMPLEMENTED, False)],
)  # fmt: skip
async def test_refused_reports_wait_unless_retrying_cannot_help(answer: grpc.StatusCode, kept: bool) -> None:
    agent, catalog = agent_with(record()), FakeCatalog()
    catalog.answer = answer
    agent._pod_mac_seen(KEY, "/run/p", "02:42:00:00:00:42")
    await report(agent, catalog)
    assert len(catalog.sent) == 1 and (KEY in agent.pod_macs) is kept


@pytest.mark.parametrize(
    ("seen", "age"),
    [
        (record(mac="02:42:00:00:00:42"), 0.0),  # already recorded
        (record(netns="/run/other"), 0.0),  # another incarnation of the port
        (record(), macreport.PENDING_S + 1),  # waited too long (a full resync tells again if still needed)
    ],
)
async def test_reports_the_catalog_needs_not_are_dropped_unsent(seen: catalog_pb2.PodInterface, age: float) -> None:
    agent, catalog = agent_with(seen), FakeCatalog()
    agent.pod_macs[KEY] = PodMac("/run/p", "02:42:00:00:00:42", time.monotonic() - age)
    await report(agent, catalog)
    assert catalog.sent == [] and agent.pod_macs == {}
