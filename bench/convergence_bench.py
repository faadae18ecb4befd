#!/usr/bin/env python3
"""Convergence: the time from a CNI ADD returning on node 1 until a pod on node 2 reaches the new pod (ICMP), for
N new pods (default 100) in a 2-node lab; p50 and p99. Target p99 <= 100 ms. Needs root; removes everything.

The ADD is the real `multinet` executable exec'd with node 1's attachment config; the prober runs inside a blue
pod on node 2 and timestamps the first echo reply with the same monotonic clock.

Usage: bench/convergence_bench.py [N]"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from labctl import REPO, bench_lab

sys.path[:0] = [str(REPO), str(REPO / "proto")]

from multinetctl.lab import pods  # noqa: E402
from multinetctl.lab.state import Attachment, LabDir, PodInfo  # noqa: E402


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    samples: list[float] = []
    with bench_lab(2) as lab:
        lab.run_pod("probe", "node2", "blue")
        prober = subprocess.Popen(
            ["ip", "netns", "exec", lab.pod_netns("probe"), sys.executable, str(Path(__file__).with_name("prober.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert prober.stdout is not None and prober.stdin is not None
        if prober.stdout.readline().strip() != "ready":
            raise SystemExit("prober did not start")
        lab_dir = LabDir(lab.state_dir)
        state = lab_dir.load()
        try:
            for i in range(count):
                pod = PodInfo(f"c{i}", "node1", f"{lab.name}-pod-c{i}", f"{lab.name}-c{i}")
                subprocess.run(["ip", "netns", "add", pod.netns], check=True)
                subprocess.run(["ip", "-n", pod.netns, "link", "set", "lo", "up"], check=True)
                state.pods[pod.name] = pod
                att = Attachment("blue", "network-blue-conf", "eth1")
                status, result = pods.cni(lab_dir, state, pod, "ADD", att)
                added = time.monotonic_ns()
                if status != 0:
                    raise SystemExit(f"ADD failed: {result}")
                pod.attachments.append(att)
                address = result["ips"][0]["address"].split("/")[0]
                prober.stdin.write(address + "\n")
                prober.stdin.flush()
                _, answered = prober.stdout.readline().split()
                if answered == "timeout":
                    raise SystemExit(f"pod {pod.name} at {address} never became reachable from node2")
                samples.append((int(answered) - added) / 1e6)
        finally:
            prober.kill()
            lab_dir.save(state)
    ordered = sorted(samples)
    report = {
        "pods": count,
        "p50_ms": round(statistics.median(samples), 1),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 1),
        "max_ms": round(ordered[-1], 1),
    }
    print(json.dumps(report, indent=2))
    print(f"convergence over {count} pods: p50 {report['p50_ms']} ms, p99 {report['p99_ms']} ms (target p99 <= 100 ms)")


if __name__ == "__main__":
    main()
