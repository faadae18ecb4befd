"""python -m services.netmgr: the catalog and/or the CNI front door of one node.

--roles catalog        Catalog, DesiredState and Events over SQLite (--database)
--roles cni            the CNI front door of --node: gRPC Cni + the `multinet` executable's local socket
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections.abc import Sequence
from pathlib import Path

from services.common import logs, telemetry, tls
from services.common.lifecycle import run_until_signalled
from services.common.paths import InstancePaths, unix_target

from .app import CniRole, NetmgrApp, NetmgrConfig


def parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="netmgr", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--state-dir")
    p.add_argument("--roles", default="catalog,cni")
    p.add_argument("--listen", action="append", help="gRPC address (unix:/path or host:port); repeatable")
    p.add_argument("--database", help="catalog SQLite file (default: STATE/multinet.db)")
    p.add_argument("--node", default=socket.gethostname())
    p.add_argument("--catalog", help="catalog target for the CNI role (default: this process)")
    p.add_argument("--ipam", help="IPAM target (default: unix:RUN/ipam.sock)")
    p.add_argument("--agent", help="this node's agent target (default: unix:RUN/agent.sock)")
    p.add_argument("--cni-socket", help="local socket for the multinet executable (default: RUN/cni.sock)")
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def config_from(args: argparse.Namespace) -> NetmgrConfig:
    paths = InstancePaths.resolve(args.state_dir)
    paths.ensure()
    roles = {r.strip() for r in args.roles.split(",") if r.strip()}
    listen = tuple(args.listen or [unix_target(paths.socket("netmgr"))])
    cni = None
    if "cni" in roles:
        cni = CniRole(
            node=args.node,
            catalog_target=_catalog_target(args, roles, listen, paths),
            ipam_target=args.ipam or unix_target(paths.socket("ipam")),
            agent_target=args.agent or unix_target(paths.socket("agent")),
            local_socket=Path(args.cni_socket) if args.cni_socket else paths.cni_socket,
        )
    database = Path(args.database) if args.database else paths.database
    return NetmgrConfig(listen=listen, database=database if "catalog" in roles else None, cni=cni)


def _catalog_target(args: argparse.Namespace, roles: set[str], listen: tuple[str, ...], paths: InstancePaths) -> str:
    """Where the CNI role finds the catalog: --catalog; this process when it has the catalog role; else the
    instance's netmgr socket — which must then not be this process's own address."""
    if args.catalog:
        return str(args.catalog)
    if "catalog" in roles:
        return listen[0]
    target = unix_target(paths.socket("netmgr"))
    if target in listen:
        raise SystemExit(
            "netmgr: --roles cni without the catalog role needs --catalog (the catalog's address), "
            f"or --listen on another address than {target}"
        )
    return target


def main(argv: Sequence[str]) -> int:
    args = parse(argv)
    logs.setup(args.log_level)
    tls.require(args.listen or ())  # unusable TLS material (or a client-only one for TCP) stops it here, named
    telemetry.setup("netmgr")
    app = NetmgrApp(config_from(args))
    asyncio.run(run_until_signalled(app.start, app.aclose, lambda: print("netmgr ready", flush=True)))
    telemetry.shutdown()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
