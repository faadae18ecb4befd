"""Two IPAM replicas (`python -m services.ipam`) on one real etcd, many concurrent clients over both, one replica
killed with SIGKILL mid-burst: no address is handed out twice, and every Allocate that returned success is
recorded afterwards (clients of the killed replica retry on the other one, as a runtime retries ADD)."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import grpc
import pytest
from multinet.v1 import ipam_pb2, ipam_pb2_grpc

from services.common import rpc
from services.ipam.stores.etcd_client import EtcdClient
from tests.fixtures.etcd import EtcdServer
from tests.integration.ipam.conftest import IpamProcess, etcd_url
from tests.integration.ipam.test_grpc_api import allocate

pytestmark = pytest.mark.integration
CLIENTS = 24
PER_CLIENT = 30
KILL_AFTER = CLIENTS * PER_CLIENT // 3
RANGE = {"range": "10.0.0.0/16", "ipRanges": [{"range": "fd00::/64"}]}


async def test_two_replicas_no_duplicate_no_lost_reservation_across_a_kill(etcd: EtcdServer, workdir: Path) -> None:
    url = etcd_url(etcd)
    a, b = IpamProcess(url, workdir / "a.sock"), IpamProcess(url, workdir / "b.sock")
    replicas = [a, b]
    try:
        await asyncio.gather(a.wait_ready(), b.wait_ready())
        async with rpc.channel(a.target) as ch_a, rpc.channel(b.target) as ch_b:
            stubs = [ipam_pb2_grpc.IpamStub(ch_a), ipam_pb2_grpc.IpamStub(ch_b)]
            successes: dict[str, list[str]] = {}
            served_by = collections.Counter[str]()
            enough = asyncio.Event()

            async def client(n: int) -> None:
                for i in range(PER_CLIENT):
                    cid = f"c{n}-{i}"
                    for stub_index in (n % 2, 1):  # on failure of replica A, retry on B (same owner key)
                        try:
                            answer = await stubs[stub_index].Allocate(allocate("blue", RANGE, cid), timeout=15)
                        except grpc.aio.AioRpcError as exc:
                            assert stub_index == 0, f"replica B failed: {exc.code()} {exc.details()}"
                            continue
                        successes[cid] = [x.address for x in answer.allocations]
                        served_by["ab"[stub_index] + ("-existing" if answer.existing else "")] += 1
                        break
                    if len(successes) >= KILL_AFTER:
                        enough.set()

            async def killer() -> None:
                await enough.wait()
                a.kill()

            await asyncio.gather(killer(), *(client(n) for n in range(CLIENTS)))

            assert len(successes) == CLIENTS * PER_CLIENT
            assert served_by["a"] > 0 and served_by["b"] > 0, served_by
            assert a.process.returncode == -9
            handed_out = [address for addresses in successes.values() for address in addresses]
            assert len(handed_out) == len(set(handed_out)), "an address was handed out twice"

            listed = await stubs[1].ListReservations(ipam_pb2.ListReservationsRequest(network="blue"))
            recorded = collections.defaultdict(list)
            for r in listed.reservations:
                recorded[r.owner.container_id].append(r.address)
            for cid, addresses in successes.items():
                assert sorted(x.split("/")[0] for x in addresses) == sorted(recorded[cid]), cid
            addresses_listed = [r.address for r in listed.reservations]
            assert len(addresses_listed) == len(set(addresses_listed))

            # the address keys agree with the owners: nothing half-written by the killed replica
            client_ = EtcdClient([etcd.client_url])
            try:
                prefix = url.partition("?prefix=")[2].encode()
                keys, _ = await client_.scan(prefix + b"i/a/blue/", keys_only=True)
            finally:
                await client_.close()
            assert len(keys) == len(addresses_listed)

            # a replacement replica loads the state and continues without duplicates
            c = IpamProcess(url, workdir / "c.sock")
            replicas.append(c)
            await c.wait_ready()
            async with rpc.channel(c.target) as ch_c:
                more = await asyncio.gather(
                    *(
                        (ipam_pb2_grpc.IpamStub(ch_c) if i % 2 else stubs[1]).Allocate(allocate("blue", RANGE, f"x{i}"))
                        for i in range(40)
                    )
                )
            fresh = [x.address for answer in more for x in answer.allocations]
            assert not set(fresh) & set(handed_out) and len(fresh) == len(set(fresh))
    finally:
        for replica in replicas:
            replica.close()
