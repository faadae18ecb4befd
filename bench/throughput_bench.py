#!/usr/bin/env python3
"""Throughput: iperf3, single TCP stream, pod to pod across two lab nodes on a secondary network (blue), against
raw kernel VXLAN between the same two node namespaces (no multinet: a vxlan device with an address on each),
measured in the same run, alternating, median of R runs. Target ratio >= 0.95. Needs root; removes everything.

Where the work runs (--cpus, for multinet and the reference alike):
- `node` (default): the lab's nodes as separate machines. Each node's uplink steers what it receives to that
  node's own core (node 1: CPU 0, node 2: CPU 1), as a NIC's receive-side scaling keeps a machine's receive
  work on its own cores; the iperf3 client runs on node 1's core, the server on node 2's. Without this, the
  fabric (veth pairs) hands every packet node 1 sends to node 2's receive path on node 1's core: one core
  would carry both machines' kernel work.
- `pinned`: client on CPU 0, server on CPU 1, no steering: most kernel work of both nodes on CPU 0 (what
  runs in the server's own context stays on CPU 1).
- `shared`: nothing pinned or steered: the scheduler decides (on 2 cores single runs move by 20%).

Reported: the ratio of the medians, and the median of the per-round ratios (each multinet run against the raw
run right after it: less exposed to the machine's drift). The agents' tc-BPF fast path is on when the kernel
supports it (MULTINET_FASTPATH=off to measure the routing path alone); the benchmark waits for its programs on
every device the agents own (pod ports, tunnels), prints which run one and which do not, and the receive
steering the agents gave their tunnels (MULTINET_TUNNEL_RPS, default off).

Usage: bench/throughput_bench.py [SECONDS] [RUNS] [--cpus node|pinned|shared]"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from labctl import bench_lab

from services.vppagent.drivers.linux.fastpath.control import OWNER_PREFIX, wanted_mode
from tests.fixtures.fastpath import tcx_programs
from tests.fixtures.netns import sh


def fast_path_devices(ns: str) -> list[str]:
    """The node's devices running a multinet fast-path program (tcx ingress)."""
    return sorted(dev for dev, names in tcx_programs(ns).items() if any(n.startswith(OWNER_PREFIX) for n in names))


def owned_devices(ns: str) -> set[str]:
    """The node's devices the agent made (pod ports, tunnels: alias multinet:...)."""
    links = json.loads(sh(f"ip -n {ns} -j link show").stdout)
    return {link["ifname"] for link in links if link.get("ifalias", "").startswith("multinet:")}


def wait_for_fast_path(nodes: list[str]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Programs go on in the background (within ~1 s of an ADD): wait until every device the agent owns runs
    one, for 5 s at most; not at all with the fast path switched off. Returns the devices running a program and
    those still without one, per node."""
    deadline = time.monotonic() + (0 if wanted_mode(None) is False else 5)
    while True:
        found = {ns: fast_path_devices(ns) for ns in nodes}
        missing = {ns: sorted(owned_devices(ns) - set(found[ns])) for ns in nodes}
        if not any(missing.values()) or time.monotonic() > deadline:
            return found, missing
        time.sleep(0.1)  # polling the agents' background attach


MODES = ("node", "pinned", "shared")


def options(argv: list[str]) -> tuple[int, int, str]:
    """SECONDS, RUNS and the --cpus mode."""
    parser = argparse.ArgumentParser(description="cross-node pod-to-pod throughput against raw VXLAN")
    parser.add_argument("seconds", nargs="?", type=int, default=4)
    parser.add_argument("runs", nargs="?", type=int, default=8)
    parser.add_argument("--cpus", choices=MODES, default="node")
    args = parser.parse_args(argv)
    return args.seconds, args.runs, args.cpus


def node_cpus(mode: str) -> tuple[int, int] | None:
    """The cores of node 1 (client) and node 2 (server), or None when nothing is pinned (also on one CPU: the
    report then says `shared`)."""
    if mode == "shared" or (os.cpu_count() or 1) < 2:
        return None
    return 0, 1


def pinned(cpu: int | None) -> list[str]:
    return [] if cpu is None else ["taskset", "-c", str(cpu)]


def iperf(server_ns: str, client_ns: str, address: str, seconds: int, cpus: tuple[int, int] | None) -> float:
    client_cpu, server_cpu = cpus if cpus else (None, None)
    server = subprocess.Popen(
        ["ip", "netns", "exec", server_ns, *pinned(server_cpu), "iperf3", "-s", "-1", "-p", "5201"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while True:
            out = subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    client_ns,
                    *pinned(client_cpu),
                    "iperf3",
                    "-c",
                    address,
                    "-p",
                    "5201",
                    "-t",
                    str(seconds),
                    "-J",
                ],
                capture_output=True,
                text=True,
            )
            result = json.loads(out.stdout) if out.stdout.strip().startswith("{") else {}
            received = result.get("end", {}).get("sum_received")
            if out.returncode == 0 and received:
                return float(received["bits_per_second"]) / 1e9
            if time.monotonic() > deadline:
                raise SystemExit(f"iperf3 failed: {out.stdout[-500:]}{out.stderr[-500:]}")
            time.sleep(0.1)
    finally:
        server.kill()
        server.wait()


def raw_vxlan(node_a: str, node_b: str, ua: str, ub: str, mtu: int) -> None:
    for ns, local, remote, addr in ((node_a, ua, ub, "10.99.0.1/24"), (node_b, ub, ua, "10.99.0.2/24")):
        subprocess.run(
            [
                "ip",
                "-n",
                ns,
                "link",
                "add",
                "rawvx",
                "mtu",
                str(mtu),
                "type",
                "vxlan",
                "id",
                "4242",
                "local",
                local,
                "remote",
                remote,
                "dstport",
                "4790",
                "dev",
                "uplink0",
            ],
            check=True,
        )
        subprocess.run(["ip", "-n", ns, "addr", "add", addr, "dev", "rawvx"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "rawvx", "up"], check=True)


def set_rps(ns: str, dev: str, mask: str) -> None:
    subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            "sh",
            "-c",
            f"for q in /sys/class/net/{dev}/queues/rx-*; do echo {mask} > $q/rps_cpus; done",
        ],
        check=True,
    )


def rps_masks(ns: str) -> dict[str, str]:
    """Each device's receive steering as the node's /sys shows it (non-zero only)."""
    out = subprocess.run(
        ["ip", "netns", "exec", ns, "sh", "-c", "grep -H . /sys/class/net/*/queues/rx-0/rps_cpus"],
        capture_output=True,
        text=True,
    ).stdout
    masks = {}
    for line in out.splitlines():
        path, _, mask = line.partition(":")
        if mask.strip("0,"):
            masks[path.split("/")[4]] = mask
    return masks


def main() -> None:
    seconds, runs, mode = options(sys.argv[1:])
    cpus = node_cpus(mode)
    mode = mode if cpus else "shared"
    with bench_lab(2) as lab:
        lab.run_pod("a", "node1", "blue")
        b = lab.run_pod("b", "node2", "blue")
        b_ip = b["interfaces"][0]["ips"][0].split("/")[0]
        mtu = int(
            json.loads(
                subprocess.run(
                    ["ip", "-n", lab.pod_netns("a"), "-j", "link", "show", "eth1"], capture_output=True, text=True
                ).stdout
            )[0]["mtu"]
        )
        nodes = {n["name"]: n for n in lab.state()["nodes"]}
        node1, node2 = lab.node_netns("node1"), lab.node_netns("node2")
        fast_path, without = wait_for_fast_path([node1, node2])
        raw_vxlan(node1, node2, nodes["node1"]["underlay"], nodes["node2"]["underlay"], mtu)
        tunnel_rps = {ns: rps_masks(ns) for ns in (node1, node2)}  # before the benchmark's own steering
        if mode == "node" and cpus:  # (node mode always has them: this narrows the type)
            for ns, cpu in zip((node1, node2), cpus, strict=True):
                set_rps(ns, "uplink0", f"{1 << cpu:x}")
        ours, raw = [], []
        for _ in range(runs):  # alternating: the machine's load drifts
            ours.append(iperf(lab.pod_netns("b"), lab.pod_netns("a"), b_ip, seconds, cpus))
            raw.append(iperf(node2, node1, "10.99.0.2", seconds, cpus))
    med = statistics.median
    report = {
        "seconds": seconds,
        "cpus": mode,
        "runs": runs,
        "mtu": mtu,
        "fast_path_devices": fast_path,
        "owned_devices_without_program": without,
        "receive_steering_before": tunnel_rps,
        "multinet_gbps": [round(x, 2) for x in ours],
        "raw_vxlan_gbps": [round(x, 2) for x in raw],
        "multinet_median_gbps": round(med(ours), 2),
        "raw_vxlan_median_gbps": round(med(raw), 2),
        "ratio": round(med(ours) / med(raw), 3),
        "paired_ratio_median": round(med(o / r for o, r in zip(ours, raw, strict=True)), 3),
    }
    on = all(fast_path.values()) and not any(without.values())
    partly = any(fast_path.values()) and not on
    print(json.dumps(report, indent=2))
    print(
        f"throughput (--cpus {mode}): pod to pod over blue {report['multinet_median_gbps']} Gbit/s vs raw VXLAN "
        f"{report['raw_vxlan_median_gbps']} Gbit/s: ratio {report['ratio']} (target >= 0.95), paired "
        f"{report['paired_ratio_median']}; fast path {'on' if on else 'PARTLY on' if partly else 'off'}"
    )


if __name__ == "__main__":
    main()
