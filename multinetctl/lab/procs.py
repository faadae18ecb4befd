"""The lab's processes: the shared services (catalog, IPAM) in the fabric namespace, reachable over TCP on the
fabric as they would be in a cluster; on every node an agent and a CNI front door (netmgr --roles cni)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from multinet.v1 import catalog_pb2, catalog_pb2_grpc

from services.common import rpc, tls
from services.common.paths import unix_target

from .state import CATALOG_PORT, IPAM_PORT, LabDir, LabError, LabState, NodeInfo, ProcInfo
from .topology import UPLINK

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


SERVICE_ROLES = frozenset({"catalog", "ipam"})


def env(lab: LabDir, role: str = "") -> dict[str, str]:
    """The lab's processes' environment: this repository importable, the lab's TLS material (made at `up`):
    the services' certificate for the shared services, the nodes' (client only) for everything else."""
    path = os.environ.get("PYTHONPATH", "")
    made = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), str(REPO / "proto"), path) if p))
    made[tls.ENV] = str(lab.tls_dir / (tls.SERVICES if role in SERVICE_ROLES else tls.NODES))
    return made


def spawn(lab: LabDir, state: LabState, netns: str, node: str, role: str, argv: list[str]) -> ProcInfo:
    lab.logs.mkdir(parents=True, exist_ok=True)
    log_path = lab.logs / f"{role}{'-' + node if node else ''}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env=env(lab, role),
            cwd=REPO,
        )
    info = ProcInfo(proc.pid, node, role, argv)
    state.processes.append(info)
    return info


def catalog_target(state: LabState) -> str:
    return f"{state.fabric_ip}:{CATALOG_PORT}"


def ipam_target(state: LabState) -> str:
    return f"{state.fabric_ip}:{IPAM_PORT}"


def start_shared(lab: LabDir, state: LabState) -> None:
    run = lab.run_dir
    spawn(
        lab,
        state,
        state.fabric_netns,
        "",
        "catalog",
        [
            "-m",
            "services.netmgr",
            "--roles",
            "catalog",
            "--state-dir",
            str(lab.root),
            "--listen",
            f"0.0.0.0:{CATALOG_PORT}",
            "--listen",
            unix_target(run / "netmgr.sock"),
            "--database",
            str(lab.root / "catalog.db"),
        ],
    )
    spawn(
        lab,
        state,
        state.fabric_netns,
        "",
        "ipam",
        [
            "-m",
            "services.ipam",
            "--state-dir",
            str(lab.root),
            "--listen",
            f"0.0.0.0:{IPAM_PORT}",
            "--listen",
            unix_target(run / "ipam.sock"),
            "--store",
            f"sqlite:{lab.root / 'ipam.db'}",
            "--catalog",
            unix_target(run / "netmgr.sock"),
        ],
    )


def agent_argv(lab: LabDir, state: LabState, node: NodeInfo) -> list[str]:
    home = lab.node_dir(node.name)
    return [
        "-m",
        "services.vppagent",
        "--state-dir",
        str(home),
        "--node",
        node.name,
        "--listen",
        unix_target(home / "run" / "agent.sock"),
        "--catalog",
        catalog_target(state),
        "--underlay-ip",
        node.underlay,
        "--uplink",
        UPLINK,
        "--resync-interval",
        "10",
    ]


def cni_argv(lab: LabDir, state: LabState, node: NodeInfo) -> list[str]:
    home = lab.node_dir(node.name)
    return [
        "-m",
        "services.netmgr",
        "--roles",
        "cni",
        "--state-dir",
        str(home),
        "--node",
        node.name,
        "--listen",
        unix_target(home / "run" / "netmgr.sock"),
        "--catalog",
        catalog_target(state),
        "--ipam",
        ipam_target(state),
        "--agent",
        unix_target(home / "run" / "agent.sock"),
        "--cni-socket",
        str(cni_socket(lab, node.name)),
    ]


def cni_socket(lab: LabDir, node: str) -> Path:
    return lab.node_dir(node) / "run" / "cni.sock"


def start_node(lab: LabDir, state: LabState, node: NodeInfo) -> None:
    spawn(lab, state, node.netns, node.name, "agent", agent_argv(lab, state, node))
    spawn(lab, state, node.netns, node.name, "cni", cni_argv(lab, state, node))


def running(pid: int) -> bool:
    """Exists and is not a zombie (orphans are not always reaped promptly: PID 1 may be any program)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def alive(info: ProcInfo) -> bool:
    if not running(info.pid):
        return False
    try:  # the pid could have been reused since: check it is still our command (empty while it execs)
        cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return cmdline == [b""] or all(arg.encode() in cmdline for arg in info.argv[1:3])


def stop(info: ProcInfo, sig: int = signal.SIGTERM) -> None:
    if not alive(info):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(info.pid, sig)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and alive(info):
        time.sleep(0.02)
    if alive(info):
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, signal.SIGKILL)


def wait_ready(lab: LabDir, state: LabState, nodes: list[NodeInfo]) -> None:
    """Ready: the catalog answers, every agent registered its node, every CNI front door listens."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    wanted = {n.name for n in nodes}
    while time.monotonic() < deadline:
        dead = [p for p in state.processes if not alive(p)]
        if dead:
            raise LabError(f"{dead[0].role} {dead[0].node} exited; its last log lines:\n{log_tail(lab, dead[0])}")
        sockets = all(cni_socket(lab, n.name).exists() for n in nodes) and (lab.run_dir / "ipam.sock").exists()
        if sockets and wanted <= registered_nodes(lab):
            return
        time.sleep(0.05)
    raise LabError(f"lab not ready within {READY_TIMEOUT_S:.0f}s; see {lab.logs}")


def registered_nodes(lab: LabDir) -> set[str]:
    sock = lab.run_dir / "netmgr.sock"
    if not sock.exists():
        return set()

    async def query() -> set[str]:
        async with rpc.channel(unix_target(sock)) as channel:
            reply = await catalog_pb2_grpc.CatalogStub(channel).ListNodes(catalog_pb2.ListRequest(), timeout=2)
        return {n.name for n in reply.nodes}

    try:
        return asyncio.run(query())
    except Exception:  # not up yet
        return set()


def log_tail(lab: LabDir, info: ProcInfo, lines: int = 12) -> str:
    path = lab.logs / f"{info.role}{'-' + info.node if info.node else ''}.log"
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def require(state: LabState, node: str, role: str) -> ProcInfo:
    for info in state.processes:
        if info.node == node and info.role == role:
            return info
    raise LabError(f"no {role} process for node {node!r}")


__all__ = ["LabError", "alive", "start_node", "start_shared", "stop", "wait_ready"]
