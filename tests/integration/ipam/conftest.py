"""IPAM integration fixtures: a real store (SQLite file or real etcd), the servicer on a unix socket in a temporary
directory, and `python -m services.ipam` replicas as subprocesses. Everything is removed on teardown."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from multinet.v1 import ipam_pb2, ipam_pb2_grpc

from services.common import rpc
from services.ipam import IpamServicer, build_ipam
from tests.fixtures.etcd import EtcdServer, etcd

__all__ = ["etcd"]
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="multinet-ipam-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Served:
    stub: ipam_pb2_grpc.IpamAsyncStub
    servicer: IpamServicer
    target: str


@asynccontextmanager
async def serve(store_url: str, socket: Path, catalog: str | None = None) -> AsyncIterator[Served]:
    """build_ipam + start_server on a unix socket, as the embedded process does; a client channel to it."""
    servicer = await build_ipam(store_url, catalog, reconcile_interval=3600)
    target = f"unix:{socket}"
    server = None
    try:
        server = await rpc.start_server([servicer.register], [target])
        async with rpc.channel(target) as channel:
            yield Served(ipam_pb2_grpc.IpamStub(channel), servicer, target)
    finally:
        if server is not None:
            await server.stop(None)
        await servicer.aclose()


def etcd_url(server: EtcdServer) -> str:
    """A prefix of its own per use: tests sharing one etcd never see each other's keys."""
    return f"etcd:{server.client_url}?prefix=/test-{uuid.uuid4().hex[:8]}/"


@pytest.fixture(params=["sqlite", "etcd"])
def store_url(request: pytest.FixtureRequest, workdir: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:{workdir / 'ipam.db'}"
        return
    server = request.getfixturevalue("etcd")
    yield etcd_url(server)


@pytest.fixture
async def ipam(store_url: str, workdir: Path) -> AsyncIterator[Served]:
    async with serve(store_url, workdir / "ipam.sock") as served:
        yield served


class IpamProcess:
    """`python -m services.ipam` as a subprocess (a replica); stopped and reaped on close."""

    def __init__(self, store_url: str, socket: Path, *extra: str) -> None:
        self.target = f"unix:{socket}"
        self.log_path = socket.with_suffix(".log")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.ipam", "--listen", self.target, "--store", store_url, *extra],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'proto'}"},
            )  # fmt: skip

    async def wait_ready(self, within: float = 20.0) -> None:
        """Poll a cheap RPC until it answers (the store is loaded once the socket serves)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                async with rpc.channel(self.target) as channel:
                    stub = ipam_pb2_grpc.IpamStub(channel)
                    await stub.ListReservations(ipam_pb2.ListReservationsRequest(network="probe"), timeout=1)
                    return
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.05)  # polling until the deadline
        raise RuntimeError(f"ipam replica not ready: {self.log_path.read_text(errors='replace')[-3000:]}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        self.kill()
