#!/usr/bin/env python3
"""Bulk programming: a node joining a network that has N remote pods (default 10,000 over 10 peer nodes).

multinet: the agent receives the desired-state snapshot (catalog protos, as from netmgr's stream) and converges
its dataplane (conversion, plan, diff, batched netlink) — timed from the snapshot to the last ack.
reference: `ip -batch` creating the same VXLAN device, next hops and routes, and `bridge -batch` the same
forwarding entries, in a fresh namespace in the same run.
Prints JSON and the rate ratio (target >= 0.5). Needs root; removes everything it creates.

Usage: bench/bulk_bench.py [N] [PEERS]"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "proto")]

from multinet.v1 import agent_pb2, catalog_pb2  # noqa: E402

from services.vppagent.agent import AgentSettings, NodeAgent  # noqa: E402
from services.vppagent.drivers.linux.driver import LinuxDriver  # noqa: E402
from services.vppagent.drivers.linux.netlink.netns import entered  # noqa: E402
from services.vppagent.model import peer_nexthop, table_for_vni, vtep_mac  # noqa: E402

VNI = 777
BASE = ipaddress.ip_address("10.128.0.0")


def sh(cmd: str) -> None:
    subprocess.run(cmd, shell=True, check=True, capture_output=True)


def make_node(name: str) -> None:
    sh(f"ip netns add {name}")
    sh(f"ip -n {name} link add uplink0 type veth peer name peer0")
    sh(f"ip -n {name} link set uplink0 up && ip -n {name} link set peer0 up && ip -n {name} link set lo up")
    sh(f"ip -n {name} addr add 172.31.0.1/24 dev uplink0")


def remotes(n: int, peers: int) -> list[tuple[str, str]]:
    return [(str(BASE + i + 1), f"peer{i % peers}") for i in range(n)]


def reference(n: int, peers: int) -> float:
    ns = f"mnbulk-ref-{os.getpid()}"
    make_node(ns)
    try:
        sh(f"ip -n {ns} link add mnvx{VNI} type vxlan id {VNI} local 172.31.0.1 dstport 4789 nolearning dev uplink0")
        sh(f"ip -n {ns} link set mnvx{VNI} up")
        table = table_for_vni(VNI)
        with (
            tempfile.NamedTemporaryFile("w", suffix=".ip", delete=False) as ipf,
            tempfile.NamedTemporaryFile("w", suffix=".br", delete=False) as brf,
        ):
            for p in range(peers):
                ipf.write(
                    f"neigh replace {peer_nexthop(f'peer{p}')} lladdr {vtep_mac(f'peer{p}', VNI)} "
                    f"dev mnvx{VNI} nud permanent\n"
                )
                dst = f"172.31.{1 + p // 250}.{p % 250 + 2}"
                brf.write(f"fdb append {vtep_mac(f'peer{p}', VNI)} dev mnvx{VNI} dst {dst} self permanent\n")
            for ip, peer in remotes(n, peers):
                ipf.write(f"route replace {ip}/32 via inet6 {peer_nexthop(peer)} dev mnvx{VNI} onlink table {table}\n")
        start = time.perf_counter()
        sh(f"bridge -n {ns} -batch {brf.name}")
        sh(f"ip -n {ns} -batch {ipf.name}")
        elapsed = time.perf_counter() - start
        os.unlink(ipf.name)
        os.unlink(brf.name)
        return elapsed
    finally:
        sh(f"ip netns del {ns}")


def snapshot(n: int, peers: int) -> agent_pb2.DesiredStateUpdate:
    update = agent_pb2.DesiredStateUpdate(revision=1, snapshot=True)
    update.networks.append(catalog_pb2.Network(name="bulk", vni=VNI, ranges=["10.128.0.0/9"]))
    update.nodes.append(catalog_pb2.Node(name="joiner", underlay_ip="172.31.0.1"))
    for p in range(peers):
        update.nodes.append(catalog_pb2.Node(name=f"peer{p}", underlay_ip=f"172.31.{1 + p // 250}.{p % 250 + 2}"))
    for i, (ip, peer) in enumerate(remotes(n, peers)):
        update.interfaces.append(
            catalog_pb2.PodInterface(
                network="bulk",
                container_id=f"c{i}",
                ifname="eth1",
                netns=f"/run/netns/x{i}",
                node=peer,
                ips=[f"{ip}/32"],
            )
        )
    return update


def multinet(n: int, peers: int) -> tuple[float, int]:
    ns = f"mnbulk-mn-{os.getpid()}"
    make_node(ns)
    update = snapshot(n, peers)
    try:
        with entered(f"/var/run/netns/{ns}"):
            agent = NodeAgent(AgentSettings(node="joiner", underlay_ip="172.31.0.1"), LinuxDriver("uplink0"))

            async def join() -> tuple[float, int]:
                await agent.start()
                start = time.perf_counter()
                agent.on_update(update)
                report = await agent.reconcile_once(full=True)
                elapsed = time.perf_counter() - start
                if report.problems:
                    raise SystemExit(f"problems: {report.problems[:3]}")
                await agent.close()
                return elapsed, report.added

            result = asyncio.run(join())
        routes = subprocess.run(
            f"ip -n {ns} route show table {table_for_vni(VNI)} | grep -c via",
            shell=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if int(routes) != n:
            raise SystemExit(f"expected {n} routes, found {routes}")
        return result
    finally:
        sh(f"ip netns del {ns}")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    peers = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    ref = reference(n, peers)
    ours, added = multinet(n, peers)
    report = {
        "remote_pods": n,
        "peers": peers,
        "ip_batch_s": round(ref, 3),
        "ip_batch_routes_per_s": round(n / ref),
        "multinet_s": round(ours, 3),
        "multinet_routes_per_s": round(n / ours),
        "multinet_objects_added": added,
        "ratio": round(ref / ours, 2),
    }
    print(json.dumps(report, indent=2))
    print(
        f"bulk: multinet {report['multinet_routes_per_s']}/s vs ip -batch {report['ip_batch_routes_per_s']}/s:"
        f" ratio {report['ratio']} (target >= 0.5)"
    )


if __name__ == "__main__":
    main()
