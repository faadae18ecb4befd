"""The node agent as a process or as part of the embedded all-in-one."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from services.common import local, rpc
from services.common.lifecycle import TaskGroup

from .agent import AgentSettings, NodeAgent
from .drivers.base import Driver
from .macreport import report_pod_macs
from .servicer import AgentServicer
from .stream import follow_desired_state


@dataclass(frozen=True, slots=True)
class AgentConfig:
    settings: AgentSettings
    listen: tuple[str, ...]
    catalog_target: str
    driver: str = "linux"
    uplink: str = ""  # underlay interface; "" = the default route's


def make_driver(name: str, uplink: str) -> Driver:
    if name == "linux":
        from .drivers.linux.driver import LinuxDriver

        return LinuxDriver(uplink)
    if name == "vpp":
        from .drivers.vpp import make_vpp_driver

        return make_vpp_driver()
    raise ValueError(f"unknown dataplane driver {name!r} (linux or vpp)")


class AgentApp:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.agent = NodeAgent(config.settings, make_driver(config.driver, config.uplink))
        self._server: grpc.aio.Server | None = None
        self._channels = rpc.Channels()
        self._servicer = AgentServicer(self.agent)
        self._tasks = TaskGroup()

    async def start(self) -> None:
        await self.agent.start()
        self._server = await rpc.start_server([self._servicer.register], self.config.listen)
        for address in self.config.listen:
            local.register(address, self._servicer)
        self._tasks.spawn("desired-state", follow_desired_state(self.agent, self._channels, self.config.catalog_target))
        self._tasks.spawn("reconcile", self.agent.reconcile_loop())
        self._tasks.spawn("pod-macs", report_pod_macs(self.agent, self._channels, self.config.catalog_target))

    async def aclose(self) -> None:
        await self._tasks.close()
        for address in self.config.listen:
            local.unregister(address, self._servicer)
        if self._server is not None:
            await self._server.stop(grace=1.0)
        await self._channels.close()
        await self.agent.close()
