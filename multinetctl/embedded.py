"""`up`: the embedded all-in-one control plane of one host — netmgr (catalog + CNI front door), IPAM and the
node agent in one process, each on its own root-only unix socket, talking gRPC exactly as separate processes
would. SQLite state under the state directory. SIGTERM stops it cleanly."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys

from services.common import logs, telemetry
from services.common.lifecycle import run_until_signalled
from services.common.paths import InstancePaths, unix_target
from services.ipam.app import IpamApp, IpamConfig
from services.netmgr.app import CniRole, NetmgrApp, NetmgrConfig
from services.vppagent.agent import AgentSettings
from services.vppagent.app import AgentApp, AgentConfig

from .daemon import running_pid, start_detached

READY_TIMEOUT_S = 20.0


def up(args: argparse.Namespace) -> int:
    paths = InstancePaths.resolve(args.state_dir)
    if args.detach:
        argv = [a for a in sys.argv[1:] if a not in ("-d", "--detach")]
        return start_detached(paths, argv)
    if (pid := running_pid(paths)) is not None:
        print(f"error: multinet is already running (pid {pid})", file=sys.stderr)
        return 1
    logs.setup(args.log_level)
    telemetry.setup("multinet")
    paths.ensure()
    stack = EmbeddedStack(paths, args.node or socket.gethostname(), args.underlay_ip, args.uplink, args.driver)
    asyncio.run(run_until_signalled(stack.start, stack.stop, stack.ready))
    telemetry.shutdown()
    return 0


class EmbeddedStack:
    def __init__(self, paths: InstancePaths, node: str, underlay_ip: str, uplink: str, driver: str) -> None:
        self.paths = paths
        netmgr_target = unix_target(paths.socket("netmgr"))
        self.netmgr = NetmgrApp(
            NetmgrConfig(
                listen=(netmgr_target,),
                database=paths.database,
                cni=CniRole(
                    node=node,
                    catalog_target=netmgr_target,
                    ipam_target=unix_target(paths.socket("ipam")),
                    agent_target=unix_target(paths.socket("agent")),
                    local_socket=paths.cni_socket,
                ),
            )
        )
        self.ipam = IpamApp(IpamConfig(listen=(unix_target(paths.socket("ipam")),),
                                       store_url=f"sqlite:{paths.state_dir / 'ipam.db'}",
                                       catalog_target=netmgr_target))  # fmt: skip
        self.agent = AgentApp(
            AgentConfig(
                settings=AgentSettings(node=node, underlay_ip=underlay_ip),
                listen=(unix_target(paths.socket("agent")),),
                catalog_target=netmgr_target,
                driver=driver,
                uplink=uplink,
            )
        )

    async def start(self) -> None:
        await self.netmgr.start()
        await self.ipam.start()
        await self.agent.start()
        await self._wait_in_sync()

    async def _wait_in_sync(self) -> None:
        """Ready means a CNI ADD would be served now: the front door and the agent both hold the catalog."""
        view = self.netmgr.view
        assert view is not None
        async with asyncio.timeout(READY_TIMEOUT_S):
            await view.synced.wait()
            await self.agent.agent.converged.wait()

    def ready(self) -> None:
        self.paths.pid_file.write_text(f"{os.getpid()}\n")
        print(f"multinet up: node {self.agent.config.settings.node}, sockets in {self.paths.run_dir}", flush=True)

    async def stop(self) -> None:
        try:
            await self.agent.aclose()
            await self.ipam.aclose()
            await self.netmgr.aclose()
        finally:
            self.paths.pid_file.unlink(missing_ok=True)
