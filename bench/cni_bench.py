#!/usr/bin/env python3
"""CNI ADD/DEL latency per attachment through the real `multinet` executable (exec → interface ready in the
pod, which is when the plugin returns), against the reference bridge + host-local plugins measured in the same
run by ../shared/bench/ref_cni_bench.py. Needs root. Cleans up everything it creates.

Usage: bench/cni_bench.py [N]   (default 100) — prints JSON and a summary line with both p50 ratios."""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REF = REPO.parent / "shared" / "bench" / "ref_cni_bench.py"
ENV = dict(os.environ, PYTHONPATH=f"{REPO}:{REPO / 'proto'}")
NETWORK = """apiVersion: projectcalico.org/v3
kind: Network
metadata: {name: bench}
spec: {vni: 4242, range: 10.200.0.0/16}
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: bench-att}
spec:
  config: '{"type": "multinet", "network": "bench"}'
"""


def pct(values: list[float], p: float) -> float:
    return round(sorted(values)[int(p * (len(values) - 1))] * 1000, 2)


def ctl(state: Path, *args: str, stdin: str | None = None) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "multinetctl", *args, "--state-dir", str(state)],
        input=stdin,
        capture_output=True,
        text=True,
        env=ENV,
        cwd=REPO,
        check=True,
    )
    return out.stdout


def measure_multinet(n: int, root: Path) -> dict[str, float]:
    state, bin_dir, conf_dir = root / "state", root / "bin", root / "net.d"
    node = f"mnbench-node-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", node], check=True)
    log = (root / "stack.log").open("w")
    stack = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            node,
            sys.executable,
            "-m",
            "multinetctl",
            "up",
            "--state-dir",
            str(state),
            "--node",
            "bench",
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=log,
        env=ENV,
        cwd=REPO,
    )
    pods: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while not (state / "run" / "multinet.pid").exists():
            if time.monotonic() > deadline or stack.poll() is not None:
                raise SystemExit(f"stack did not start: {(root / 'stack.log').read_text()[-2000:]}")
            time.sleep(0.05)
        ctl(state, "apply", "-f", "-", stdin=NETWORK)
        ctl(state, "install-cni", "--bin-dir", str(bin_dir), "--conf-dir", str(conf_dir))
        conflist = json.loads((conf_dir / "bench-att.conflist").read_text())
        conf = dict(conflist["plugins"][0], name=conflist["name"], cniVersion=conflist["cniVersion"])
        data = json.dumps(conf).encode()
        plugin = str(bin_dir / "multinet")
        adds, dels = [], []
        for i in range(n):
            pod = f"mnbench-{os.getpid()}-{i}"
            subprocess.run(["ip", "netns", "add", pod], check=True)
            pods.append(pod)
        for i, pod in enumerate(pods):
            env = {
                "CNI_COMMAND": "ADD",
                "CNI_CONTAINERID": f"c{i}",
                "CNI_NETNS": f"/var/run/netns/{pod}",
                "CNI_IFNAME": "eth1",
                "CNI_PATH": str(bin_dir),
            }
            t = time.perf_counter()
            r = subprocess.run([plugin], input=data, env=env, capture_output=True)
            adds.append(time.perf_counter() - t)
            if r.returncode:
                raise SystemExit(f"ADD failed: {r.stdout.decode()}")
        for i, pod in enumerate(pods):
            env = {
                "CNI_COMMAND": "DEL",
                "CNI_CONTAINERID": f"c{i}",
                "CNI_NETNS": f"/var/run/netns/{pod}",
                "CNI_IFNAME": "eth1",
                "CNI_PATH": str(bin_dir),
            }
            t = time.perf_counter()
            r = subprocess.run([plugin], input=data, env=env, capture_output=True)
            dels.append(time.perf_counter() - t)
            if r.returncode:
                raise SystemExit(f"DEL failed: {r.stdout.decode()}")
        return {
            "add_ms_p50": round(statistics.median(adds) * 1000, 2),
            "add_ms_p90": pct(adds, 0.9),
            "add_ms_p99": pct(adds, 0.99),
            "del_ms_p50": round(statistics.median(dels) * 1000, 2),
            "del_ms_p90": pct(dels, 0.9),
        }
    finally:
        stack.send_signal(signal.SIGTERM)
        try:
            stack.wait(timeout=20)
        except subprocess.TimeoutExpired:
            stack.kill()
        for pod in pods:
            subprocess.run(["ip", "netns", "del", pod], capture_output=True)
        subprocess.run(["ip", "netns", "del", node], capture_output=True)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    if not REF.exists():
        raise SystemExit(f"reference benchmark missing: {REF}")
    ref = json.loads(
        subprocess.run([sys.executable, str(REF), str(n)], capture_output=True, text=True, check=True).stdout
    )
    root = Path(tempfile.mkdtemp(prefix="multinet-bench-"))
    try:
        ours = measure_multinet(n, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report = {
        "n": n,
        "multinet": ours,
        "reference_bridge_host_local": ref,
        "add_p50_ratio": round(ours["add_ms_p50"] / ref["add_ms_p50"], 2),
        "del_p50_ratio": round(ours["del_ms_p50"] / ref["del_ms_p50"], 2),
    }
    print(json.dumps(report, indent=2))
    print(
        f"ADD p50 {ours['add_ms_p50']} ms vs reference {ref['add_ms_p50']} ms: ratio {report['add_p50_ratio']}"
        f" | DEL p50 {ours['del_ms_p50']} ms vs {ref['del_ms_p50']} ms: ratio {report['del_p50_ratio']}"
        f" (goal <= 1.0, issue threshold <= 2.0)"
    )


if __name__ == "__main__":
    main()
