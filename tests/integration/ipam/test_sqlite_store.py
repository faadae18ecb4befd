"""The SQLite store on a real file: bulk-loaded pools, IPv6 as blobs, and owner lookups that never scan a pool."""

from __future__ import annotations

import ipaddress
import sqlite3
from pathlib import Path

import pytest
from multinet.v1 import catalog_pb2

from services.ipam.book import AddressBook
from services.ipam.core import IpamCore
from services.ipam.errors import StoreUnavailable
from services.ipam.model import OwnerKey
from services.ipam.stores.sqlite import DELETE_OWNER, SELECT_OWNER, SqliteStore, bulk_fill_ipv4

pytestmark = pytest.mark.integration


def config(cidr: str) -> catalog_pb2.IpamConfig:
    return catalog_pb2.IpamConfig(ranges=[catalog_pb2.IpRange(cidr=cidr)], overlapping_ranges=True)


def test_owner_lookups_use_the_owner_index_not_a_pool_scan(workdir: Path) -> None:
    db_path = workdir / "ipam.db"
    bulk_fill_ipv4(db_path, "big", int(ipaddress.IPv4Address("10.0.0.1")), 5000, 16, kept=9, out_of=10)
    db = sqlite3.connect(db_path)
    try:
        for sql in (SELECT_OWNER, DELETE_OWNER):
            plan = " ".join(str(row) for row in db.execute("EXPLAIN QUERY PLAN " + sql, ("big", "x", "eth0")))
            assert "addresses_by_owner" in plan, plan
    finally:
        db.close()


async def test_bulk_filled_pool_loads_and_allocates_around_it(workdir: Path) -> None:
    db_path = workdir / "ipam.db"
    first = int(ipaddress.IPv4Address("10.0.0.1"))
    bulk_fill_ipv4(db_path, "big", first, 9000, 16, kept=9, out_of=10)  # .1-.9 taken, .10 free, ...
    core = IpamCore(SqliteStore(db_path))
    await core.start()
    try:
        assert core.status("big", config("10.0.0.0/16")).reserved == 9000
        got = [(await core.allocate("big", config("10.0.0.0/16"), OwnerKey("big", f"c{i}", "eth0"))).leases[0].ip
               for i in range(3)]  # fmt: skip
        assert got == ["10.0.0.10", "10.0.0.20", "10.0.0.30"]
        v6 = catalog_pb2.IpamConfig(ranges=[catalog_pb2.IpRange(cidr="fd00::/48", range_start="fd00:0:0:ffff::1")])
        lease = (await core.allocate("big", v6, OwnerKey("big", "v6", "eth0"))).leases[0]
        assert lease.ip == "fd00:0:0:ffff::1"
    finally:
        await core.aclose()
    reopened = IpamCore(SqliteStore(db_path))
    await reopened.start()
    try:
        assert reopened.book.taken("big", 6, int(ipaddress.IPv6Address("fd00:0:0:ffff::1")))
        assert reopened.status("big", config("10.0.0.0/16")).reserved == 9003
    finally:
        await reopened.aclose()


async def test_one_process_owns_a_sqlite_file(workdir: Path) -> None:
    first = SqliteStore(workdir / "ipam.db")
    await first.start(AddressBook())
    try:
        second = SqliteStore(workdir / "ipam.db")
        with pytest.raises(StoreUnavailable, match="another IPAM process"):
            await second.start(AddressBook())
        await second.aclose()
    finally:
        await first.aclose()
    again = SqliteStore(workdir / "ipam.db")
    await again.start(AddressBook())  # released on close
    await again.aclose()
