"""IPAM benchmark, through the gRPC API with 8 concurrent clients (each its own channel), servers as subprocesses:

1. SQLite: allocations/s, p50/p99 latency.                       target ≥ 1,000/s, p99 ≤ 20 ms
2. etcd, two replicas (clients split over both): same figures.   target ≥ 300/s,  p99 ≤ 20 ms
3. Pool-size independence: a /8 pool 90% full (prefilled inside SQLite, not through gRPC; free addresses spread
   evenly) against empty /24 pools, measured in alternating rounds on one server.   target ratio ≥ 0.8
4. With --etcd-tls, also 2. over mutual TLS (etcd: https, client certificates from multinet's CA), same run.
whereabouts' best published figure is ~9.5 allocations/s.

    python bench/ipam_bench.py [--quick] [--out results.json] [--etcd-tls]

Prints one JSON document, then a one-line summary with the targets."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "proto")]

import grpc  # noqa: E402
from multinet.v1 import catalog_pb2, ipam_pb2, ipam_pb2_grpc  # noqa: E402

from services.common import rpc, tls  # noqa: E402
from services.ipam.stores.sqlite import bulk_fill_ipv4  # noqa: E402
from tests.fixtures.etcd import running_etcd  # noqa: E402

CLIENTS = 8


class Replica:
    def __init__(self, store: str, socket: Path, tls_dir: Path | None = None) -> None:
        self.target = f"unix:{socket}"
        self.log = socket.with_suffix(".log")
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.ipam", "--listen", self.target, "--store", store,
                 "--log-level", "warning"],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'proto'}",
                     **({tls.ENV: str(tls_dir)} if tls_dir else {})},
            )  # fmt: skip

    async def ready(self, within: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < within and self.process.poll() is None:
            try:
                async with rpc.channel(self.target) as channel:
                    request = ipam_pb2.ListReservationsRequest(network="probe")
                    await ipam_pb2_grpc.IpamStub(channel).ListReservations(request, timeout=1)
                    return time.monotonic() - started
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.1)  # polling until ready
        raise RuntimeError(f"ipam did not start: {self.log.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def config(cidr: str) -> catalog_pb2.IpamConfig:
    return catalog_pb2.IpamConfig(ranges=[catalog_pb2.IpRange(cidr=cidr)], overlapping_ranges=True)


async def burst(targets: Sequence[str], jobs: list[tuple[str, catalog_pb2.IpamConfig, str]]) -> dict[str, Any]:
    """Run the Allocate jobs with CLIENTS concurrent clients, client i on targets[i % len(targets)]."""
    channels = [rpc.channel(targets[i % len(targets)]) for i in range(CLIENTS)]
    latencies: list[float] = []
    queue = iter(jobs)

    async def client(i: int) -> None:
        stub = ipam_pb2_grpc.IpamStub(channels[i])
        for network, cfg, cid in queue:
            request = ipam_pb2.AllocateRequest(
                network=network, config=cfg, owner=ipam_pb2.Owner(container_id=cid, ifname="eth0")
            )
            started = time.perf_counter()
            await stub.Allocate(request, timeout=30)
            latencies.append(time.perf_counter() - started)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(CLIENTS)))
        elapsed = time.perf_counter() - started
    finally:
        for channel in channels:
            await channel.close(None)
    latencies.sort()
    return {
        "allocations": len(latencies),
        "per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    }


def jobs_in(network: str, cidr: str, count: int, tag: str) -> list[tuple[str, catalog_pb2.IpamConfig, str]]:
    cfg = config(cidr)
    return [(network, cfg, f"{tag}-{i}") for i in range(count)]


async def bench_sqlite(work: Path, count: int) -> dict[str, Any]:
    replica = Replica(f"sqlite:{work / 'sqlite.db'}", work / "sqlite.sock")
    try:
        await replica.ready(30)
        await burst([replica.target], jobs_in("warm", "10.0.0.0/16", 300, "w"))
        return await burst([replica.target], jobs_in("bench", "10.0.0.0/16", count, "s"))
    finally:
        replica.stop()


async def bench_etcd(work: Path, count: int, mutual_tls: bool = False) -> dict[str, Any]:
    """Two replicas on one etcd; `mutual_tls`: etcd takes https clients with a certificate from multinet's CA only
    and the replicas use the services' material (etcd:https://...)."""
    material = None
    if mutual_tls:
        tls.generate(work / "tls", force=True)
        material = work / "tls" / tls.SERVICES
    with running_etcd(tls_dir=material) as etcd:
        store = f"etcd:{etcd.client_url}"
        replicas = [Replica(store, work / "etcd-a.sock", material), Replica(store, work / "etcd-b.sock", material)]
        try:
            await asyncio.gather(*(r.ready(30) for r in replicas))
            targets = [r.target for r in replicas]
            await burst(targets, jobs_in("warm", "10.0.0.0/16", 300, "w"))
            return await burst(targets, jobs_in("bench", "10.0.0.0/16", count, "e"))
        finally:
            for replica in replicas:
                replica.stop()


async def bench_pool_size(work: Path, prefix: int, rounds: int, per_round: int) -> dict[str, Any]:
    big = ipaddress.IPv4Network(f"10.0.0.0/{prefix}")
    hosts = big.num_addresses - 2
    count = (hosts - 1) * 9 // 10 + 1  # offsets i*10//9 stay inside the hosts: 90% taken, every 10th free
    db = work / "pool.db"
    started = time.monotonic()
    bulk_fill_ipv4(db, "big", int(big.network_address) + 1, count, big.prefixlen, kept=9, out_of=10)
    prefill_s = time.monotonic() - started
    replica = Replica(f"sqlite:{db}", work / "pool.sock")
    try:
        load_s = await replica.ready(600)
        small_cfg, big_cfg = config("10.1.0.0/24"), config(str(big))
        await burst([replica.target], [("warm", small_cfg, f"w{i}") for i in range(200)])
        small_rates, big_rates, small_n = [], [], 0
        for r in range(rounds):
            # Empty /24 pools: a fresh network (its own domain) every 200 allocations keeps each one mostly empty.
            small_jobs = []
            for i in range(per_round):
                small_jobs.append((f"small-{small_n // 200}", small_cfg, f"s{r}-{i}"))
                small_n += 1
            big_jobs = [("big", big_cfg, f"b{r}-{i}") for i in range(per_round)]
            for kind in ("small", "big") if r % 2 else ("big", "small"):  # alternate: no bias from the order
                if kind == "small":
                    small_rates.append((await burst([replica.target], small_jobs))["per_second"])
                else:
                    big_rates.append((await burst([replica.target], big_jobs))["per_second"])
        async with rpc.channel(replica.target) as channel:
            status = await ipam_pb2_grpc.IpamStub(channel).PoolStatus(
                ipam_pb2.PoolStatusRequest(network="big", config=big_cfg)
            )
    finally:
        replica.stop()
    small_rate, big_rate = statistics.median(small_rates), statistics.median(big_rates)
    return {
        "big_pool": str(big),
        "prefilled": count,
        "big_pool_fill": round(status.reserved / status.size, 4),
        "prefill_s": round(prefill_s, 1),
        "server_load_s": round(load_s, 1),
        "empty_24_per_second": small_rate,
        "full_pool_per_second": big_rate,
        "ratio": round(big_rate / small_rate, 3),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="multinet-ipam-bench-"))
    try:
        count = 1000 if args.quick else 4000
        results: dict[str, Any] = {"clients": CLIENTS}
        results["sqlite"] = await bench_sqlite(work, count)
        results["etcd_2_replicas"] = await bench_etcd(work, count)
        if args.etcd_tls:
            results["etcd_2_replicas_mutual_tls"] = await bench_etcd(work, count, mutual_tls=True)
        prefix = 16 if args.quick else 8
        results["pool_size"] = await bench_pool_size(work, prefix, rounds=5, per_round=400 if args.quick else 1000)
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def summary(r: dict[str, Any]) -> str:
    s, e, p = r["sqlite"], r["etcd_2_replicas"], r["pool_size"]
    checks = {
        "sqlite": s["per_second"] >= 1000 and s["p99_ms"] <= 20,
        "etcd": e["per_second"] >= 300 and e["p99_ms"] <= 20,
        "ratio": p["ratio"] >= 0.8,
    }
    t = r.get("etcd_2_replicas_mutual_tls")
    if t is not None:
        checks["etcd_tls"] = t["per_second"] >= 300 and t["p99_ms"] <= 20
    verdict = "PASS" if all(checks.values()) else "FAIL " + ",".join(k for k, ok in checks.items() if not ok)
    over_tls = ""
    if t is not None:
        over_tls = f"etcd x2 over mutual TLS {t['per_second']}/s p50 {t['p50_ms']} ms p99 {t['p99_ms']} ms; "
    return (
        f"ipam bench {verdict}: "
        f"sqlite {s['per_second']}/s p50 {s['p50_ms']} ms p99 {s['p99_ms']} ms (>=1000/s, p99<=20); "
        f"etcd x2 {e['per_second']}/s p50 {e['p50_ms']} ms p99 {e['p99_ms']} ms (>=300/s, p99<=20); {over_tls}"
        f"{p['big_pool']} {p['big_pool_fill']:.0%} full vs empty /24 ratio {p['ratio']} (>=0.8); "
        f"whereabouts ~9.5/s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer allocations and a /16 instead of the /8")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--etcd-tls", action="store_true", help="also etcd over mutual TLS (https, client certs)")
    options = parser.parse_args()
    found = asyncio.run(main(options))
    text = json.dumps(found, indent=2)
    print(text)
    if options.out:
        options.out.write_text(text + "\n")
    print(summary(found))
