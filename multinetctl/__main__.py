"""multinetctl: the operator CLI of multinet.

  multinetctl up [-d]                 run the embedded control plane (netmgr + ipam + node agent)
  multinetctl down                    stop a detached `up`
  multinetctl serve SERVICE ...       run one service as its own process (netmgr, ipam, agent)
  multinetctl apply -f FILE           create or update Networks and NetworkAttachmentDefinitions
  multinetctl delete KIND NAME        remove a network or an attachment definition
  multinetctl get KIND [-o json]      networks, attachments, pods, nodes, reservations
  multinetctl install-cni --bin-dir B --conf-dir C
  multinetctl tls init DIR            a CA, DIR/services and DIR/nodes certificates for mutual TLS on TCP
  multinetctl lab ...                 a local N-node lab in network namespaces

Every command accepts --state-dir DIR (or MULTINET_STATE_DIR) to address a separate instance."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", help="instance directory (default: /var/lib/multinet + /run/multinet)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multinetctl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="run the embedded control plane")
    _common(up)
    up.add_argument("-d", "--detach", action="store_true", help="run in the background, return once ready")
    up.add_argument("--node", help="this node's name (default: the hostname)")
    up.add_argument("--underlay-ip", default="", help="this node's VTEP address (multi-node)")
    up.add_argument("--uplink", default="", help="underlay interface (default: the default route's)")
    up.add_argument("--driver", default="linux", choices=["linux", "vpp"])
    up.add_argument("--log-level", default="info")

    down = sub.add_parser("down", help="stop a detached `up`")
    _common(down)

    serve = sub.add_parser("serve", help="run one service as its own process")
    serve.add_argument("service", choices=["netmgr", "ipam", "agent"])
    serve.add_argument("args", nargs=argparse.REMAINDER, help="the service's own options (see --help)")

    apply = sub.add_parser("apply", help="create or update objects from YAML")
    _common(apply)
    apply.add_argument("-f", "--filename", required=True, help="YAML file ('-' for stdin)")
    apply.add_argument("--dry-run", action="store_true")
    apply.add_argument("--server", help="netmgr target (default: this instance's socket)")

    delete = sub.add_parser("delete", help="remove a network or an attachment definition")
    _common(delete)
    delete.add_argument("kind", choices=["network", "attachment"])
    delete.add_argument("names", nargs="+")
    delete.add_argument("--server")

    get = sub.add_parser("get", help="list objects")
    _common(get)
    get.add_argument("kind", choices=["networks", "attachments", "pods", "nodes", "reservations", "agent"])
    get.add_argument("-o", "--output", choices=["table", "json"], default="table")
    get.add_argument("--network", default="")
    get.add_argument("--node", default="")
    get.add_argument("--server")

    install = sub.add_parser("install-cni", help="install the multinet plugin and one conflist per attachment")
    _common(install)
    install.add_argument("--bin-dir", required=True)
    install.add_argument("--conf-dir", required=True)
    install.add_argument("--cni-version", default="1.0.0")
    install.add_argument(
        "--shim",
        choices=["auto", "native", "python"],
        default="auto",
        help="the CNI executable: native build (faster start) when built, else the Python shim",
    )
    install.add_argument("--server")

    tls = sub.add_parser("tls", help="make the CA and certificates for mutual TLS between nodes and services")
    tls_sub = tls.add_subparsers(dest="tls_command", required=True, metavar="SUBCOMMAND")
    init = tls_sub.add_parser(
        "init", help="write DIR/services and DIR/nodes, each ca.crt, tls.crt, tls.key (a component's MULTINET_TLS_DIR)"
    )
    init.add_argument("dir", help="directory to write (created if missing)")
    init.add_argument("--days", type=_days, default=365, help="validity (default 365)")
    init.add_argument("--force", action="store_true", help="replace existing files")

    lab = sub.add_parser("lab", help="a local multi-node lab in network namespaces")
    lab.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["lab"]:  # the lab has its own parser (its options come before its sub-command)
        from .lab.cli import lab

        return lab(argv[1:])
    args = build_parser().parse_args(argv)
    from services.common.tls import TlsError

    try:
        return _run(args)
    except TlsError as exc:  # MULTINET_TLS_DIR set but unusable, found when a command dialled over TCP
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "up":
        from .embedded import up

        return up(args)
    if args.command == "down":
        from .daemon import down

        return down(args)
    if args.command == "serve":
        from .serve import serve

        return serve(args.service, args.args)
    if args.command in ("apply", "delete"):
        from .catalog import apply_or_delete

        return apply_or_delete(args)
    if args.command == "get":
        from .get import get

        return get(args)
    if args.command == "install-cni":
        from .install_cni import install_cni

        return install_cni(args)
    if args.command == "tls":
        return tls_init(args)
    if args.command == "lab":
        from .lab.cli import lab

        return lab(args.args)
    return 2


def _days(text: str) -> int:
    from services.common.tls import MAX_DAYS

    value = int(text)
    if not 1 <= value <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"{value}: expected 1 to {MAX_DAYS}")
    return value


def tls_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from services.common import tls

    try:
        written = tls.generate(Path(args.dir), days=args.days, force=args.force)
    except (tls.TlsError, OSError) as exc:
        print(f"multinetctl tls init: {exc}", file=sys.stderr)
        return 1
    print("\n".join(str(p) for p in written))
    where = Path(args.dir).resolve()
    print(
        f"catalog, IPAM, etcd: {tls.ENV}={where / tls.SERVICES}; agents, CNI front doors, multinetctl: "
        f"{tls.ENV}={where / tls.NODES}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
