#!/usr/bin/env python3
"""Throughput: iperf3, single TCP stream, pod to pod across two lab nodes on a secondary network (blue), against
raw kernel VXLAN between the same two node namespaces (no multinet: a vxlan device with an address on each),
measured in the same run, alternating, median of R runs. Target ratio >= 0.95. Needs root; removes everything.

Also measured: raw VXLAN with the receive packet steering the agent gives its own tunnel devices (RPS over all
CPUs), so the gain from that tuning is visible separately. Reported: the ratio of the medians, and the median of
the per-round ratios (each multinet run against the raw run right after it: less exposed to the machine's
drift). The agents' tc-BPF fast path is on when the kernel supports it (MULTINET_FASTPATH=off to measure the
routing path alone); the benchmark waits for its programs on both pods' ports and prints which devices run one.

Usage: bench/throughput_bench.py [SECONDS] [RUNS] [--pin]"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from labctl import bench_lab

from services.vppagent.drivers.linux.fastpath import loader, tcx
from services.vppagent.drivers.linux.fastpath.control import OWNER_PREFIX
from services.vppagent.drivers.linux.netlink.netns import entered
from services.vppagent.drivers.linux.sysctl import cpu_mask


def fast_path_devices(ns: str) -> list[str]:
    """The node's devices running a multinet fast-path program (tcx ingress)."""
    links = json.loads(subprocess.run(["ip", "-n", ns, "-j", "link", "show"], capture_output=True, text=True).stdout)
    found = []
    with entered(f"/run/netns/{ns}"):
        for link in links:
            for prog_id in tcx.query(link["ifindex"]):
                fd = loader.fd_by_id(prog_id)
                try:
                    if loader.info(fd).name.startswith(OWNER_PREFIX):
                        found.append(link["ifname"])
                finally:
                    os.close(fd)
    return sorted(found)


def wait_for_fast_path(nodes: list[str], ports: int) -> dict[str, list[str]]:
    """Programs go on in the background (within ~1 s of an ADD): wait for pod ports and tunnel on every node,
    unless the fast path is off (nothing at all appears)."""
    deadline = time.monotonic() + 5
    while True:
        found = {ns: fast_path_devices(ns) for ns in nodes}
        if all(len(devs) >= ports + 1 for devs in found.values()) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)  # polling the agents' background attach


PIN = "--pin" in sys.argv  # iperf3 client on CPU 0, server on CPU 1, for multinet and the references alike


def pinned(cpu: int) -> list[str]:
    """With --pin, client and server on CPUs of their own: unpinned, on a 2-core machine, the scheduler sometimes
    stacks both ends and the softirq work on one CPU, which moves single runs by 20%. Pinned, receive packet
    steering (which multinet gives its tunnels, and the third reference) competes with the server's CPU."""
    return ["taskset", "-c", str(cpu)] if PIN and (os.cpu_count() or 1) > 1 else []


def iperf(server_ns: str, client_ns: str, address: str, seconds: int) -> float:
    server = subprocess.Popen(
        ["ip", "netns", "exec", server_ns, *pinned(1), "iperf3", "-s", "-1", "-p", "5201"],
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
                    *pinned(0),
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


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--pin"]
    seconds = int(args[0]) if args else 4
    runs = int(args[1]) if len(args) > 1 else 8
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
        fast_path = wait_for_fast_path([node1, node2], ports=1)
        raw_vxlan(node1, node2, nodes["node1"]["underlay"], nodes["node2"]["underlay"], mtu)
        ours, raw, raw_rps = [], [], []
        for _ in range(runs):  # alternating: the machine's load drifts
            ours.append(iperf(lab.pod_netns("b"), lab.pod_netns("a"), b_ip, seconds))
            for ns in (node1, node2):
                set_rps(ns, "rawvx", "0")
            raw.append(iperf(node2, node1, "10.99.0.2", seconds))
            for ns in (node1, node2):  # the same receive steering multinet gives its tunnels
                set_rps(ns, "rawvx", cpu_mask(os.cpu_count() or 1))
            raw_rps.append(iperf(node2, node1, "10.99.0.2", seconds))
    med = statistics.median
    report = {
        "seconds": seconds,
        "pinned": PIN,
        "runs": runs,
        "mtu": mtu,
        "fast_path_devices": fast_path,
        "multinet_gbps": [round(x, 2) for x in ours],
        "raw_vxlan_gbps": [round(x, 2) for x in raw],
        "raw_vxlan_rps_gbps": [round(x, 2) for x in raw_rps],
        "multinet_median_gbps": round(med(ours), 2),
        "raw_vxlan_median_gbps": round(med(raw), 2),
        "raw_vxlan_rps_median_gbps": round(med(raw_rps), 2),
        "ratio": round(med(ours) / med(raw), 3),
        "ratio_vs_raw_with_rps": round(med(ours) / med(raw_rps), 3),
        "paired_ratio_median": round(med(o / r for o, r in zip(ours, raw, strict=True)), 3),
    }
    on = all(fast_path.values())
    print(json.dumps(report, indent=2))
    print(
        f"throughput: pod to pod over blue {report['multinet_median_gbps']} Gbit/s vs raw VXLAN "
        f"{report['raw_vxlan_median_gbps']} Gbit/s: ratio {report['ratio']} (target >= 0.95), paired "
        f"{report['paired_ratio_median']}; vs raw VXLAN with the same receive steering "
        f"{report['raw_vxlan_rps_median_gbps']} Gbit/s: {report['ratio_vs_raw_with_rps']}; "
        f"fast path {'on' if on else 'off'}"
    )


if __name__ == "__main__":
    main()
