"""The embedded store: one SQLite file (WAL, synchronous=FULL), owned by one IPAM process.

Every call runs on one dedicated thread (SQLite connections are not shared across threads, and the event loop never
waits on a disk flush). One reservation = one transaction: the owner check, the address inserts and the cursor
updates commit together or not at all.

An address is an INTEGER for IPv4 and a 16-byte big-endian BLOB for IPv6 (past SQLite's 64-bit integers); IPv4 as
integers lets start-up load millions of reservations grouped per 2^16 block inside SQLite."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from services.ipam.allocator import BLOCK_BITS
from services.ipam.book import AddressBook
from services.ipam.errors import StoreUnavailable
from services.ipam.model import Holding, Lease, OwnerKey
from services.ipam.stores.base import Outcome, ReserveResult

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS addresses (
  network TEXT NOT NULL, version INTEGER NOT NULL, addr NOT NULL,
  container_id TEXT NOT NULL, ifname TEXT NOT NULL, pod_ref TEXT NOT NULL,
  prefixlen INTEGER NOT NULL, gateway TEXT NOT NULL, range_index INTEGER NOT NULL,
  created_ms INTEGER NOT NULL, generation INTEGER NOT NULL,
  PRIMARY KEY (network, version, addr)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS addresses_by_owner ON addresses (network, container_id, ifname);
CREATE TABLE IF NOT EXISTS cursors (
  network TEXT NOT NULL, range_id TEXT NOT NULL, ticks TEXT NOT NULL,
  PRIMARY KEY (network, range_id)) WITHOUT ROWID;
"""
_COLUMNS = (
    "network, version, addr, container_id, ifname, pod_ref, prefixlen, gateway, range_index, created_ms, generation"
)
# Without statistics the planner prefers the primary key's `network = ?` prefix, a scan of the whole pool: name
# the owner index, so owner lookups cost the same in a /8 that is 90% full as in an empty /24.
_OWNER_ROWS = "FROM addresses INDEXED BY addresses_by_owner WHERE network = ? AND container_id = ? AND ifname = ?"
SELECT_OWNER = f"SELECT {_COLUMNS} {_OWNER_ROWS}"
DELETE_OWNER = f"DELETE {_OWNER_ROWS}"


def to_db(version: int, address: int) -> int | bytes:
    return address if version == 4 else address.to_bytes(16, "big")


def from_db(value: int | bytes) -> int:
    return value if isinstance(value, int) else int.from_bytes(value, "big")


class SqliteStore:
    shared = False  # one process owns the file

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ipam-sqlite")
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._generation = 0

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite store {self.path}: {exc}") from exc

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable(f"sqlite store {self.path} is not open")
        return self._db

    async def start(self, book: AddressBook) -> None:
        await self._run(self._open)
        await self._run(self._load, book)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The in-memory index is the authority, so exactly one process may own the file: a second IPAM on it
        # would hand out the same addresses. Several replicas need the etcd store.
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreUnavailable(f"{self.path} is used by another IPAM process (use etcd for replicas)") from None
        self._lock_fd = fd
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(SCHEMA)
        self._db = db

    def _load(self, book: AddressBook) -> None:
        db = self.db
        blocks = "SELECT network, addr >> ?, group_concat(addr & ?) FROM addresses WHERE version = 4 GROUP BY 1, 2"
        for network, block, offsets in db.execute(blocks, (BLOCK_BITS, (1 << BLOCK_BITS) - 1)):
            book.load_block(network, 4, block, map(int, offsets.split(",")))
        for network, addr in db.execute("SELECT network, addr FROM addresses WHERE version = 6"):
            book.mark_taken(network, 6, from_db(addr))
        for network, range_id, ticks in db.execute("SELECT network, range_id, ticks FROM cursors"):
            book.set_cursor(network, range_id, int(ticks))

    async def reserve(self, holding: Holding, cursors: Mapping[str, int], exclusive_of: Sequence[str]) -> ReserveResult:
        return await self._run(self._reserve, holding, dict(cursors), list(exclusive_of))

    def _reserve(self, holding: Holding, cursors: dict[str, int], exclusive_of: list[str]) -> ReserveResult:
        db, key = self.db, holding.key
        db.execute("BEGIN IMMEDIATE")
        try:
            existing = db.execute(SELECT_OWNER, _owner(key)).fetchall()
            if existing:
                db.execute("ROLLBACK")
                return ReserveResult(Outcome.OWNER_EXISTS, holding=_holdings(existing)[0])
            taken = tuple(
                (network, lease.version, lease.address)
                for network in (key.network, *exclusive_of)
                for lease in holding.leases
                if db.execute(
                    "SELECT 1 FROM addresses WHERE network = ? AND version = ? AND addr = ?",
                    (network, lease.version, to_db(lease.version, lease.address)),
                ).fetchone()
            )
            if taken:
                db.execute("ROLLBACK")
                return ReserveResult(Outcome.ADDRESS_TAKEN, taken=taken)
            # Creation time in ns, strictly increasing: a generation that a re-created owner never repeats.
            self._generation = max(self._generation + 1, time.time_ns())
            saved = Holding(key, holding.leases, holding.pod_ref, holding.created_ms, self._generation)
            db.executemany(f"INSERT INTO addresses ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)", _rows(saved))
            db.executemany(
                "INSERT INTO cursors VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET ticks = excluded.ticks",
                [(key.network, range_id, str(ticks)) for range_id, ticks in cursors.items()],
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return ReserveResult(Outcome.RESERVED, holding=saved)

    async def holding(self, key: OwnerKey) -> Holding | None:
        rows = await self._run(self._select, SELECT_OWNER, _owner(key))
        return _holdings(rows)[0] if rows else None

    async def holdings(self, network: str | None) -> list[Holding]:
        where, args = ("WHERE network = ?", (network,)) if network is not None else ("", ())
        order = "ORDER BY network, container_id, ifname, range_index"
        return _holdings(await self._run(self._select, f"SELECT {_COLUMNS} FROM addresses {where} {order}", args))

    def _select(self, sql: str, args: Sequence[object]) -> list[tuple[Any, ...]]:
        return self.db.execute(sql, args).fetchall()

    async def release(self, key: OwnerKey, generation: int | None = None) -> Holding | None:
        return await self._run(self._release, key, generation)

    def _release(self, key: OwnerKey, generation: int | None) -> Holding | None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            rows = db.execute(SELECT_OWNER, _owner(key)).fetchall()
            found = _holdings(rows)[0] if rows else None
            if found is None or (generation is not None and found.generation != generation):
                db.execute("ROLLBACK")
                return None
            db.execute(DELETE_OWNER, _owner(key))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return found

    async def aclose(self) -> None:
        if self._db is not None:
            await self._run(self.db.close)
            self._db = None
        self._executor.shutdown(wait=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None


def _owner(key: OwnerKey) -> tuple[str, str, str]:
    return key.network, key.container_id, key.ifname


def _rows(h: Holding) -> Iterable[tuple[object, ...]]:
    k = h.key
    for lease in h.leases:
        yield (k.network, lease.version, to_db(lease.version, lease.address), k.container_id, k.ifname, h.pod_ref,
               lease.prefixlen, lease.gateway, lease.range_index, h.created_ms, h.generation)  # fmt: skip


def _holdings(rows: Iterable[tuple[Any, ...]]) -> list[Holding]:
    """Rows (ordered by owner) → one Holding per owner."""
    grouped: dict[OwnerKey, list[tuple[Any, ...]]] = {}
    for row in rows:
        grouped.setdefault(OwnerKey(row[0], row[3], row[4]), []).append(row)
    return [
        Holding(
            key,
            tuple(sorted((Lease(r[1], from_db(r[2]), r[6], r[7], r[8]) for r in group), key=lambda x: x.range_index)),
            pod_ref=group[0][5],
            created_ms=group[0][9],
            generation=group[0][10],
        )
        for key, group in grouped.items()
    ]


def bulk_fill_ipv4(
    path: str | Path, network: str, first: int, count: int, prefixlen: int, kept: int, out_of: int
) -> None:
    """Reserve `count` IPv4 addresses from `first` on, `kept` of every `out_of` consecutive ones (9 of 10: a pool 90%
    full with free addresses spread evenly), in one statement run inside SQLite. For benchmarks and load tests only:
    the owners are synthetic (container id fill-N, ifname eth0)."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA)
        now = int(time.time() * 1000)
        db.execute("BEGIN")
        db.execute(
            "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < ?) "
            f"INSERT INTO addresses ({_COLUMNS}) "
            "SELECT ?, 4, ? + (i * ?) / ?, 'fill-' || i, 'eth0', '', ?, '', 0, ?, i FROM seq",
            (count - 1, network, first, out_of, kept, prefixlen, now),
        )
        db.execute("COMMIT")
    finally:
        db.close()
