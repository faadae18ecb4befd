"""Restarts keep reservations and cursors; the command line stops cleanly on SIGTERM; an unreachable store is
UNAVAILABLE and never a reported address."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from multinet.v1 import ipam_pb2, ipam_pb2_grpc

from services.common import rpc
from services.common.validate import FieldError
from services.ipam import build_ipam
from tests.fixtures.etcd import EtcdServer
from tests.integration.ipam.conftest import ROOT, IpamProcess, etcd_url, serve
from tests.integration.ipam.test_grpc_api import allocate

pytestmark = pytest.mark.integration
RANGE = {"range": "10.0.0.0/24"}


async def test_sqlite_restart_keeps_reservations_and_the_cursor(workdir: Path) -> None:
    url = f"sqlite:{workdir / 'ipam.db'}"
    async with serve(url, workdir / "a.sock") as ipam:
        await ipam.stub.Allocate(allocate("blue", RANGE, "kept"))
        await ipam.stub.Allocate(allocate("blue", RANGE, "gone"))
        await ipam.stub.Release(
            ipam_pb2.ReleaseRequest(network="blue", owner=ipam_pb2.Owner(container_id="gone", ifname="eth0"))
        )
    async with serve(url, workdir / "b.sock") as ipam:
        owner = ipam_pb2.Owner(container_id="kept", ifname="eth0")
        checked = await ipam.stub.Check(ipam_pb2.CheckRequest(network="blue", owner=owner))
        assert [a.address for a in checked.allocations] == ["10.0.0.1/24"]
        fresh = await ipam.stub.Allocate(allocate("blue", RANGE, "new"))
        assert fresh.allocations[0].address == "10.0.0.3/24"  # .2 was released: the persisted cursor skips it


async def test_etcd_restart_of_a_replica_keeps_the_cursor(etcd: EtcdServer, workdir: Path) -> None:
    url = etcd_url(etcd)
    async with serve(url, workdir / "a.sock") as ipam:
        await ipam.stub.Allocate(allocate("blue", RANGE, "a"))
        await ipam.stub.Release(
            ipam_pb2.ReleaseRequest(network="blue", owner=ipam_pb2.Owner(container_id="a", ifname="eth0"))
        )
    async with serve(url, workdir / "b.sock") as ipam:
        assert (await ipam.stub.Allocate(allocate("blue", RANGE, "b"))).allocations[0].address == "10.0.0.2/24"


async def test_command_line_serves_and_stops_cleanly_on_sigterm(workdir: Path) -> None:
    socket = workdir / "ipam.sock"
    replica = IpamProcess(f"sqlite:{workdir / 'ipam.db'}", socket)
    try:
        await replica.wait_ready()
        async with rpc.channel(replica.target) as channel:
            answer = await ipam_pb2_grpc.IpamStub(channel).Allocate(allocate("blue", RANGE, "c"))
            assert answer.allocations[0].address == "10.0.0.1/24"
        assert replica.terminate() == 0
        assert not socket.exists()
    finally:
        replica.close()


def test_command_line_refuses_a_bad_store_url(workdir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.ipam", "--listen", f"unix:{workdir / 's.sock'}", "--store", "mysql:x"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "store" in done.stderr and "sqlite:" in done.stderr


async def test_bad_store_url_is_a_field_error() -> None:
    with pytest.raises(FieldError) as caught:
        await build_ipam("etcd:http://127.0.0.1:1?bogus=1")
    assert caught.value.field == "store"


async def test_unreachable_etcd_is_unavailable_and_reports_nothing(etcd: EtcdServer, workdir: Path) -> None:
    async with serve(etcd_url(etcd), workdir / "ipam.sock") as ipam:
        await ipam.stub.Allocate(allocate("blue", RANGE, "before"))
        etcd.kill()
        for call in (
            ipam.stub.Allocate(allocate("blue", RANGE, "during")),
            ipam.stub.Check(ipam_pb2.CheckRequest(network="blue", owner=ipam_pb2.Owner(container_id="x", ifname="e"))),
            ipam.stub.Release(
                ipam_pb2.ReleaseRequest(network="blue", owner=ipam_pb2.Owner(container_id="before", ifname="eth0"))
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "store unavailable" in (caught.value.details() or "")
        # the failed allocation left no mark behind in the replica's index
        status = ipam.servicer.core.status("blue", allocate("blue", RANGE, "x").config)
        assert status.reserved == 1
