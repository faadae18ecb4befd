"""`multinetctl lab`: a local N-node lab in network namespaces — the way to try multinet without a cluster, and
the multi-node test harness.

  lab up --nodes N [-f networks.yaml]   fabric + N nodes, shared services + one agent and CNI front door per node
  lab run-pod POD --node NODE --networks blue,red    a pod attached through the real `multinet` plugin
  lab exec POD -- CMD...                run a command inside a pod
  lab rm-pod POD                        CNI DEL on every attachment, then the pod's namespace goes
  lab ps                                the processes the lab runs (pid, node, role, state)
  lab stop NODE --role agent [--signal KILL] / lab start NODE --role agent
  lab rm-node NODE                      a node leaves: its processes and namespace go, the catalog forgets it
  lab down                              removes everything the lab made (also after a crash)

Every lab command takes --state-dir (default /var/lib/multinet-lab); `multinetctl get ... --state-dir` and
`multinetctl apply ... --state-dir` with the same directory talk to the lab's shared services."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from . import lifecycle, pods
from .state import DEFAULT_LAB_DIR, LabDir, LabError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="multinetctl lab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--state-dir", default=str(DEFAULT_LAB_DIR))
    sub = p.add_subparsers(dest="action", required=True)
    up = sub.add_parser("up")
    up.add_argument("--nodes", type=int, required=True)
    up.add_argument("--name", default="mnlab", help="prefix of every namespace the lab makes")
    up.add_argument("--fabric", default="10.250.0.0/24", help="the fabric's subnet (node i gets .i)")
    up.add_argument("--mtu", type=int, default=1500, help="uplink MTU")
    up.add_argument("-f", "--filename", action="append", default=[], help="objects to apply once up")
    down = sub.add_parser("down")
    down.add_argument("--name", default="", help="namespace prefix to sweep when the lab's state is lost")
    run = sub.add_parser("run-pod")
    run.add_argument("pod")
    run.add_argument("--node", required=True)
    run.add_argument("--networks", required=True, help="comma-separated networks or attachment definitions")
    ex = sub.add_parser("exec")
    ex.add_argument("pod")
    ex.add_argument("cmd", nargs=argparse.REMAINDER)
    rm = sub.add_parser("rm-pod")
    rm.add_argument("pod")
    sub.add_parser("ps")
    for name in ("stop", "start"):
        cmd = sub.add_parser(name)
        cmd.add_argument("node")
        cmd.add_argument("--role", choices=["agent", "cni"], default="agent")
        if name == "stop":
            cmd.add_argument("--signal", choices=["TERM", "KILL"], default="TERM")
    rmn = sub.add_parser("rm-node")
    rmn.add_argument("node")
    return p


def lab(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    lab_dir = LabDir(Path(args.state_dir).absolute())
    try:
        return _dispatch(args, lab_dir)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace, lab_dir: LabDir) -> int:
    if args.action == "up":
        summary = lifecycle.up(lab_dir, args.name, args.nodes, args.fabric, args.mtu, args.filename)
        print(json.dumps(summary, indent=2))
    elif args.action == "down":
        for line in lifecycle.down(lab_dir, args.name):
            print(line)
    elif args.action == "exec":
        _exec(lab_dir, args.pod, args.cmd)
    elif args.action == "ps":
        for row in lifecycle.ps(lab_dir):
            print(f"{row['pid']:>8}  {row['node'] or '-':10} {row['role']:8} {row['state']}")
    else:
        _change(args, lab_dir)
    return 0


def _exec(lab_dir: LabDir, pod_name: str, cmd: list[str]) -> None:
    pod = lab_dir.load().pods.get(pod_name)
    if pod is None:
        raise LabError(f"no pod {pod_name!r}")
    cmd = cmd[1:] if cmd[:1] == ["--"] else cmd
    if not cmd:
        raise LabError("give a command: lab exec POD -- CMD...")
    os.execvp("ip", ["ip", "netns", "exec", pod.netns, *cmd])


def _change(args: argparse.Namespace, lab_dir: LabDir) -> None:
    """Commands that change the lab: under its lock, the state saved whatever happens."""
    with lab_dir.locked():
        state = lab_dir.load()
        try:
            if args.action == "run-pod":
                report = pods.run_pod(lab_dir, state, args.pod, args.node, args.networks.split(","))
                print(json.dumps(report, indent=2))
            elif args.action == "rm-pod":
                pods.rm_pod(lab_dir, state, args.pod)
            elif args.action == "stop":
                lifecycle.stop_process(state, args.node, args.role, getattr(signal, f"SIG{args.signal}"))
            elif args.action == "start":
                lifecycle.start_process(lab_dir, state, args.node, args.role)
            elif args.action == "rm-node":
                lifecycle.remove_node(lab_dir, state, args.node)
        finally:
            lab_dir.save(state)
