"""The agent's convergence loop outlives driver failures (uses a fake driver: failures on demand)."""

from __future__ import annotations

import asyncio
import contextlib

from multinet.v1 import agent_pb2, catalog_pb2

from services.vppagent.agent import AgentSettings, NodeAgent
from services.vppagent.drivers.base import AttachResult, PodMacListener, ReconcileReport
from services.vppagent.model import DesiredNode, NetworkSpec, PortSpec


class FlakyFakeDriver:
    name = "fake"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[str] = []

    def prepare(self) -> None: ...

    def tunnel_mtu(self, underlay_v6: bool = False) -> int:
        return 1450

    def attach(self, port: PortSpec, network: NetworkSpec) -> AttachResult:
        return AttachResult(port.host_ifname, port.pod_mac, port.mtu)

    def detach(self, port: PortSpec) -> bool:
        return False

    def finish_detach(self, port: PortSpec) -> None: ...

    def report_pod_macs(self, listener: PodMacListener) -> None: ...

    def check(self, port: PortSpec, network: NetworkSpec) -> list[str]:
        return []

    def apply(self, desired: DesiredNode) -> ReconcileReport:
        return self._converge("apply")

    def reconcile(self, desired: DesiredNode) -> ReconcileReport:
        return self._converge("reconcile")

    def _converge(self, how: str) -> ReconcileReport:
        self.calls.append(how)
        if self.failures:
            self.failures -= 1
            raise OSError("netlink went away")
        return ReconcileReport()

    def close(self) -> None: ...


async def test_the_loop_survives_failures_and_reports_convergence_only_after_success() -> None:
    driver = FlakyFakeDriver(failures=2)
    agent = NodeAgent(AgentSettings(node="n1", resync_interval_s=60), driver)
    await agent.start()
    loop = asyncio.create_task(agent.reconcile_loop())
    try:
        agent.on_update(
            agent_pb2.DesiredStateUpdate(
                revision=1, snapshot=True, networks=[catalog_pb2.Network(name="blue", vni=1, ranges=["10.0.0.0/24"])]
            )
        )
        async with asyncio.timeout(5):
            await agent.converged.wait()
        assert driver.calls == ["reconcile", "reconcile", "reconcile"]  # after a failure: a full read-back again
        assert agent.in_sync
        agent.on_update(
            agent_pb2.DesiredStateUpdate(
                revision=2, networks=[catalog_pb2.Network(name="red", vni=2, ranges=["10.0.0.0/24"])]
            )
        )
        async with asyncio.timeout(5):
            while len(driver.calls) < 4:  # noqa: ASYNC110 - the fake driver has no event to wait on
                await asyncio.sleep(0.01)
        assert driver.calls[-1] == "apply"  # and the loop is still alive
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await agent.close()
