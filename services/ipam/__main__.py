"""`python -m services.ipam --listen unix:/run/multinet/ipam.sock --store sqlite:/var/lib/multinet/ipam.db`

Runs the IPAM service alone (`--store etcd:http://127.0.0.1:2379` for several replicas). SIGTERM or SIGINT stops it
cleanly: in-flight calls get a short grace, the store is closed, the socket removed."""

from __future__ import annotations

import argparse
import asyncio
import logging

from services.common import logs, telemetry, tls
from services.common.lifecycle import run_until_signalled
from services.common.paths import InstancePaths, unix_target
from services.common.validate import FieldError
from services.ipam import DEFAULT_GRACE_PERIOD, DEFAULT_RECONCILE_INTERVAL
from services.ipam.app import IpamApp, IpamConfig
from services.ipam.errors import IpamError

log = logging.getLogger("multinet.ipam")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.ipam", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", help="instance directory (default: /var/lib/multinet + /run/multinet)")
    parser.add_argument(
        "--listen", action="append", help="unix:/path or host:port; repeatable (default: RUN/ipam.sock)"
    )
    parser.add_argument("--store", help="sqlite:PATH or etcd:URL[,URL][?prefix=/path/] (default: sqlite:STATE/ipam.db)")
    parser.add_argument("--catalog", default=None, help="netmgr's Catalog target, for reconciliation (optional)")
    parser.add_argument("--reconcile-interval", type=float, default=DEFAULT_RECONCILE_INTERVAL, metavar="S")
    parser.add_argument("--grace-period", type=float, default=DEFAULT_GRACE_PERIOD, metavar="S",
                        help="never release a reservation younger than this")  # fmt: skip
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    paths = InstancePaths.resolve(args.state_dir)
    paths.ensure()  # the run directory root-only (0700), as every other service makes it
    args.listen = args.listen or [unix_target(paths.socket("ipam"))]
    args.store = args.store or f"sqlite:{paths.state_dir / 'ipam.db'}"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.setup(args.log_level)
    tls.require(args.listen or ())  # unusable TLS material (or a client-only one for TCP) stops it here, named
    telemetry.setup("ipam")
    app = IpamApp(IpamConfig(tuple(args.listen), args.store, args.catalog, args.reconcile_interval,
                             args.grace_period))  # fmt: skip
    try:
        asyncio.run(run_until_signalled(app.start, app.aclose, lambda: print("ipam ready", flush=True)))
    except (FieldError, IpamError) as exc:
        log.error("ipam cannot start", extra={"error": str(exc)})
        return 1
    finally:
        telemetry.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
