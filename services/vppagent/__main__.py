"""python -m services.vppagent: the node agent of one node (programs its dataplane)."""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from collections.abc import Sequence

from services.common import logs, telemetry, tls
from services.common.lifecycle import run_until_signalled
from services.common.paths import InstancePaths, unix_target
from services.vppagent.drivers.linux.fastpath.control import wanted_mode
from services.vppagent.drivers.linux.sysctl import tunnel_rps_mask

from .agent import AgentSettings
from .app import AgentApp, AgentConfig


def parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="vppagent", description=__doc__)
    p.add_argument("--state-dir")
    p.add_argument("--node", default=socket.gethostname())
    p.add_argument("--listen", action="append", help="gRPC address; repeatable (default: unix:RUN/agent.sock)")
    p.add_argument("--catalog", help="netmgr target (default: unix:RUN/netmgr.sock)")
    p.add_argument("--underlay-ip", default="", help="this node's VTEP address (enables VXLAN to peers)")
    p.add_argument("--uplink", default="", help="underlay interface (default: the default route's)")
    p.add_argument("--driver", default="linux", choices=["linux", "vpp"])
    p.add_argument("--resync-interval", type=float, default=30.0)
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def config_from(args: argparse.Namespace) -> AgentConfig:
    if args.driver == "linux":  # ValueErrors naming the variable, before anything starts
        tunnel_rps_mask()
        wanted_mode(None)
    paths = InstancePaths.resolve(args.state_dir)
    paths.ensure()
    return AgentConfig(
        settings=AgentSettings(node=args.node, underlay_ip=args.underlay_ip, resync_interval_s=args.resync_interval),
        listen=tuple(args.listen or [unix_target(paths.socket("agent"))]),
        catalog_target=args.catalog or unix_target(paths.socket("netmgr")),
        driver=args.driver,
        uplink=args.uplink,
    )


def main(argv: Sequence[str]) -> int:
    args = parse(argv)
    logs.setup(args.log_level)
    tls.require(args.listen or ())  # unusable TLS material (or a client-only one for TCP) stops it here, named
    telemetry.setup("vppagent")
    try:
        config = config_from(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app = AgentApp(config)
    asyncio.run(run_until_signalled(app.start, app.aclose, lambda: print("agent ready", flush=True)))
    telemetry.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
