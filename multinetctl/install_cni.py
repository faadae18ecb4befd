"""`install-cni`: put the `multinet` executable in the runtime's plugin directory and write one conflist per
attachment definition (CNI name = attachment name), pointing at this instance's CNI socket."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import grpc
from multinet.v1 import catalog_pb2, catalog_pb2_grpc

from services.common.files import write_atomically
from services.common.paths import InstancePaths
from services.netmgr.cni.config import SUPPORTED_VERSIONS
from services.netmgr.netconf import loads_lenient, plugins_of

from .client import explain, netmgr_target, open_channel

SHIM_SOURCE = Path(__file__).resolve().parent.parent / "cni" / "multinet.py"
NATIVE_SHIM = Path(__file__).resolve().parent.parent / "cni" / "build" / "multinet"  # built by scripts/setup.sh
# plugin types in a seed-style NAD that stand for "the multinet interface" (Calico/VPP's multinet used calico)
REPLACED_TYPES = {"calico", "multinet"}
CNI_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")  # what the `multinet` executable answers to VERSION


def install_cni(args: argparse.Namespace) -> int:
    paths = InstancePaths.resolve(args.state_dir)
    target = netmgr_target(paths, args.server)
    try:
        attachments = asyncio.run(_list(target))
    except grpc.aio.AioRpcError as exc:
        print(f"error: {explain(exc, target)}", file=sys.stderr)
        return 1
    bin_dir, conf_dir = Path(args.bin_dir), Path(args.conf_dir)
    kind = install_plugin(bin_dir / "multinet", paths.cni_socket, shim=args.shim)
    print(f"installed {bin_dir / 'multinet'} ({kind})")
    written: set[str] = set()
    for att in attachments:
        if att.name in written:
            print(
                f"warning: skipping {att.namespace}/{att.name}: another namespace already has a conflist named "
                f"{att.name}",
                file=sys.stderr,
            )
            continue
        path = conf_dir / f"{att.name}.conflist"
        write_atomically(path, (json.dumps(conflist(att, args.cni_version), indent=2) + "\n").encode(), 0o644)
        written.add(att.name)
        print(f"wrote {path} (network {att.network})")
    return 0


async def _list(target: str) -> list[catalog_pb2.AttachmentDefinition]:
    async with open_channel(target) as channel:
        reply = await catalog_pb2_grpc.CatalogStub(channel).ListAttachments(catalog_pb2.ListRequest(), timeout=10)
    return list(reply.attachments)


def shim_interpreter() -> str:
    """The shim needs only the standard library: prefer the distribution's Python (it starts ~0.6 ms faster
    here than a pyenv build, and does not move when a developer's environment does)."""
    system = Path("/usr/bin/python3")
    return str(system) if system.exists() else sys.executable


def install_plugin(dest: Path, socket: Path, *, interpreter: str | None = None, shim: str = "auto") -> str:
    """The CNI executable and, next to it, `multinet.socket`: the one place it learns where netmgr listens (never
    from the network configuration, which carries pod-controlled parts). The native build of the shim when there
    is one (it starts ~6 ms sooner than any CPython), else the Python shim with a Python in isolated, no-site mode
    (-IS). Both speak the same protocol and print the same answers. Returns which one was installed."""
    if shim == "native" and not NATIVE_SHIM.exists():
        raise FileNotFoundError(f"{NATIVE_SHIM} is not built: run scripts/setup.sh (needs a C compiler)")
    write_atomically(dest.with_name("multinet.socket"), f"{socket}\n".encode(), 0o644)
    if shim in ("auto", "native") and NATIVE_SHIM.exists():
        write_atomically(dest, NATIVE_SHIM.read_bytes(), 0o755)
        return "native"
    interpreter = interpreter or shim_interpreter()
    source = SHIM_SOURCE.read_text()
    write_atomically(dest, f"#!{interpreter} -IS\n{source}".encode(), 0o755)
    return "python"


def conflist(att: catalog_pb2.AttachmentDefinition, default_version: str) -> dict[str, Any]:
    conf = loads_lenient(att.config_json, "spec.config")
    version = conf.get("cniVersion") if conf.get("cniVersion") in SUPPORTED_VERSIONS else None
    ours: dict[str, Any] = {
        "type": "multinet",
        "network": att.network,
        "capabilities": {"ips": True, "mac": True},  # runtimes then pass static requests in runtimeConfig
    }
    chain: list[dict[str, Any]] = []
    for plugin in plugins_of(conf):
        if plugin.get("type") in REPLACED_TYPES:
            ours.update({k: v for k, v in plugin.items() if k not in ("type", "dataplane_options")})
            ours["type"] = "multinet"
        elif isinstance(plugin.get("type"), str):
            chain.append(plugin)  # e.g. tuning, portmap, bandwidth after us
    out: dict[str, Any] = {"cniVersion": version or default_version, "name": att.name}
    if not chain:
        # CNI 1.1: a runtime picks the highest version it shares with this list (older ones read cniVersion).
        # Only when multinet is alone: a chained plugin may not know every version listed.
        out["cniVersions"] = list(CNI_VERSIONS)
    out["plugins"] = [ours, *chain]
    return out
