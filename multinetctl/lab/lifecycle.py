"""Bringing a lab up and down, and the operations on its nodes and processes."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from multinet.v1 import catalog_pb2, catalog_pb2_grpc

from services.common import rpc, tls
from services.common.paths import unix_target

from ..install_cni import install_plugin
from . import procs, topology
from .state import LabDir, LabError, LabState


def up(lab: LabDir, name: str, count: int, fabric: str, mtu: int, files: list[str]) -> dict[str, Any]:
    if count < 1:
        raise LabError("--nodes must be at least 1")
    with lab.locked():
        if lab.exists():
            raise LabError(f"a lab is already up in {lab.root}: `multinetctl lab down --state-dir {lab.root}`")
        clash = sorted(n for n in topology.netns_names() if n.startswith(f"{name}-"))
        if clash:
            raise LabError(f"namespaces named {name}-* already exist ({', '.join(clash[:3])}): pick another --name")
        state = LabState(name, f"{name}-fabric", fabric)
        lab.save(state)
        try:
            _build(lab, state, count, mtu)
        except BaseException:
            lab.save(state)
            _teardown(lab, state)
            raise
        lab.save(state)
    for path in files:
        _ctl(lab, "apply", "-f", path)
    return summary(lab, state)


def _build(lab: LabDir, state: LabState, count: int, mtu: int) -> None:
    tls.generate(lab.tls_dir, force=True)  # the services on the fabric take only this lab's nodes
    topology.build_fabric(state)
    for i in range(1, count + 1):
        state.nodes.append(topology.add_node(state, i, mtu))
        lab.save(state)
    for node in state.nodes:
        install_plugin(lab.plugin(node.name), procs.cni_socket(lab, node.name))
    procs.start_shared(lab, state)
    for node in state.nodes:
        procs.start_node(lab, state, node)
    lab.save(state)
    procs.wait_ready(lab, state, state.nodes)


def summary(lab: LabDir, state: LabState) -> dict[str, Any]:
    return {
        "lab": state.name,
        "state_dir": str(lab.root),
        "fabric": {"netns": state.fabric_netns, "subnet": state.fabric_cidr, "services": state.fabric_ip},
        "nodes": [{"name": n.name, "netns": n.netns, "underlay": n.underlay} for n in state.nodes],
        "processes": ps(lab, state),
        "cli": f"multinetctl get networks --state-dir {lab.root}",
    }


def ps(lab: LabDir, state: LabState | None = None) -> list[dict[str, Any]]:
    state = state or lab.load()
    return [
        {"pid": p.pid, "node": p.node, "role": p.role, "state": "running" if procs.alive(p) else "exited"}
        for p in state.processes
    ]


def down(lab: LabDir, name: str = "") -> list[str]:
    with lab.locked():
        try:
            state = lab.load()
        except (LabError, ValueError, KeyError):
            state = LabState(name or "mnlab", f"{name or 'mnlab'}-fabric", "")
        return _teardown(lab, state)


def _teardown(lab: LabDir, state: LabState) -> list[str]:
    done = []
    for info in state.processes:
        procs.stop(info)
    for pid in _stray_pids(lab.root):  # processes of a lab whose state was lost (crash)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        done.append(f"killed stray process {pid}")
    done.append(f"stopped {len(state.processes)} processes")
    names = {p.netns for p in state.pods.values()} | {n.netns for n in state.nodes} | {state.fabric_netns}
    names |= {n for n in topology.netns_names() if n.startswith(f"{state.name}-")}
    for ns in sorted(names, key=lambda n: (n == state.fabric_netns, n)):
        if ns in topology.netns_names():
            topology.remove_netns(ns)
            done.append(f"removed netns {ns}")
    shutil.rmtree(lab.root, ignore_errors=True)
    done.append(f"removed {lab.root}")
    return done


def _stray_pids(root: Path) -> list[int]:
    """Processes of this lab whose pids were lost: those started with `--state-dir` this lab's directory or one of
    its node directories, as an exact argument (a `tail -f` of a log, or another lab, does not match)."""
    ours = {str(root).encode(), *(str(p).encode() for p in (root / "nodes").glob("*"))}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid() or not procs.running(int(entry.name)):
            continue
        try:
            argv = entry.joinpath("cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a == b"--state-dir" and b in ours for a, b in itertools.pairwise(argv)):
            found.append(int(entry.name))
    return found


def stop_process(state: LabState, node: str, role: str, sig: int) -> None:
    info = procs.require(state, node, role)
    if sig == signal.SIGKILL:
        if procs.alive(info):
            os.kill(info.pid, signal.SIGKILL)
        return
    procs.stop(info, sig)


def start_process(lab: LabDir, state: LabState, node_name: str, role: str) -> None:
    node = state.node(node_name)
    old = procs.require(state, node_name, role)
    if procs.alive(old):
        raise LabError(f"the {role} of {node_name} is running (pid {old.pid})")
    state.processes.remove(old)
    argv = procs.agent_argv(lab, state, node) if role == "agent" else procs.cni_argv(lab, state, node)
    procs.spawn(lab, state, node.netns, node.name, role, argv)


def remove_node(lab: LabDir, state: LabState, node_name: str) -> None:
    node = state.node(node_name)
    for info in [p for p in state.processes if p.node == node_name]:
        procs.stop(info)
        state.processes.remove(info)
    for pod_name in [n for n, p in state.pods.items() if p.node == node_name]:
        topology.remove_netns(state.pods.pop(pod_name).netns)
    topology.remove_netns(node.netns)
    state.nodes.remove(node)

    async def forget() -> None:
        async with rpc.channel(unix_target(lab.run_dir / "netmgr.sock")) as channel:
            await catalog_pb2_grpc.CatalogStub(channel).RemoveNode(
                catalog_pb2.RemoveNodeRequest(name=node_name), timeout=10
            )

    asyncio.run(forget())


def _ctl(lab: LabDir, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "multinetctl", *args, "--state-dir", str(lab.root)],
        capture_output=True,
        text=True,
        env=procs.env(lab),
        cwd=procs.REPO,
    )
    if result.returncode != 0:
        raise LabError(f"multinetctl {' '.join(args)}: {result.stderr.strip()}")
    print(result.stdout, end="", file=sys.stderr)
