"""The IPAM core: allocate, release, check, status, list and gc over a store and an in-memory AddressBook.

Allocation picks, for each range, the first free address at or after the range's cursor (the book: no store round
trip), marks it taken so concurrent requests in this process pick others, then records everything in one store
transaction. A conflict (another replica was faster) marks the address taken and picks again; a repeated ADD finds
its owner already recorded and gets the same addresses back."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

from multinet.v1 import catalog_pb2

from services.common.locks import KeyLocks
from services.ipam.allocator import advance, next_free
from services.ipam.book import AddressBook
from services.ipam.config import Plan, RangePlan, plan_of
from services.ipam.errors import AddressTaken, PoolExhausted, StoreUnavailable
from services.ipam.model import AllocateResult, Holding, Lease, OwnerKey, PoolStatus
from services.ipam.statics import assign_statics
from services.ipam.stores.base import Outcome, Store

MAX_ATTEMPTS = 64  # each conflict marks one more address taken, so retries always make progress
# Replicas sharing a store that start from the same cursor choose the same next address again and again (measured:
# one conflict per allocation). Once a conflict shows another writer is active, every pick starts at a random offset
# up to SHARED_SPREAD past the cursor for CONTENDED_S seconds, which makes conflicts rare. Still only forward. A lone
# writer never conflicts and so stays strictly sequential.
SHARED_SPREAD = 256
CONTENDED_S = 30.0


class IpamCore:
    def __init__(
        self,
        store: Store,
        book: AddressBook | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.book = book or AddressBook()
        self._clock = clock
        self._random = rng or random.Random()
        self._contended_until = 0.0  # time.monotonic() until which picks are spread
        # requests of one owner are serialised inside this process (replicas: by the store's CAS)
        self._locks: KeyLocks[OwnerKey] = KeyLocks()

    async def start(self) -> None:
        await self.store.start(self.book)

    async def aclose(self) -> None:
        await self.store.aclose()

    async def allocate(
        self,
        network: str,
        config: Plan | catalog_pb2.IpamConfig,
        owner: OwnerKey,
        pod_ref: str = "",
        requested: Sequence[str] = (),
    ) -> AllocateResult:
        if owner.network != network:
            raise ValueError(f"owner {owner} is not in network {network}")
        plan = config if isinstance(config, Plan) else plan_of(config)
        statics = assign_statics(plan, requested)
        async with self._locks.hold(owner):
            tentative: set[tuple[int, int]] = set()  # (version, address) marked in this network's book by us
            try:
                return await self._allocate(network, plan, owner, pod_ref, statics, tentative)
            except (AddressTaken, PoolExhausted):
                # A repeated ADD finds its own address taken, or the pool full: it gets what it already holds.
                held = await self.store.holding(owner)
                if held is None:
                    raise
                return AllocateResult(held.leases, existing=True)
            finally:
                for version, address in tentative:
                    self.book.mark_free(network, version, address)

    async def _allocate(
        self,
        network: str,
        plan: Plan,
        owner: OwnerKey,
        pod_ref: str,
        statics: dict[int, int],
        tentative: set[tuple[int, int]],
    ) -> AllocateResult:
        book = self.book
        chosen: dict[int, int] = {}
        for _ in range(MAX_ATTEMPTS):
            self._pick(network, plan, statics, chosen, tentative)
            leases = tuple(Lease(r.version, chosen[r.index], r.prefixlen, r.gateway, r.index) for r in plan.ranges)
            cursors = {
                r.range_id: advance(book.cursor(network, r.range_id), r, chosen[r.index])
                for r in plan.ranges
                if r.index not in statics
            }
            holding = Holding(owner, leases, pod_ref, created_ms=int(self._clock() * 1000))
            others = [n for n in book.networks() if n != network] if plan.exclusive else []
            result = await self.store.reserve(holding, cursors, others)
            if result.outcome is Outcome.RESERVED:
                tentative.clear()  # recorded: the marks are now the truth
                for range_id, ticks in cursors.items():
                    book.set_cursor(network, range_id, ticks)
                return AllocateResult(leases, existing=False)
            if result.outcome is Outcome.OWNER_EXISTS and result.holding is not None:
                return AllocateResult(result.holding.leases, existing=True)
            if self.store.shared:
                self._contended_until = time.monotonic() + CONTENDED_S
            for taken_network, version, address in result.taken:
                # Another replica was faster: the address is taken, pick again for the ranges that chose it.
                book.mark_taken(taken_network, version, address)
                if taken_network == network:
                    tentative.discard((version, address))
                for rng in plan.ranges:
                    if rng.version == version and chosen.get(rng.index) == address:
                        if rng.index in statics:
                            raise AddressTaken(f"{Lease(version, address, 0).ip} is already reserved in {network}")
                        del chosen[rng.index]
        raise StoreUnavailable(f"network {network}: {MAX_ATTEMPTS} conflicting attempts in a row, try again")

    def _pick(
        self, network: str, plan: Plan, statics: dict[int, int], chosen: dict[int, int], tentative: set[tuple[int, int]]
    ) -> None:
        """Choose an address for every range that has none yet (statics first, so dynamic picks avoid them)."""
        book = self.book
        for rng in sorted(plan.ranges, key=lambda r: r.index not in statics):
            if rng.index in chosen:
                continue
            spaces = book.spaces(network, rng.version, plan.exclusive)
            if rng.index in statics:
                address = statics[rng.index]
                if any(address in space for space in spaces):
                    holder = network if address in spaces[0] else "another network (the config is exclusive)"
                    raise AddressTaken(f"{Lease(rng.version, address, 0).ip} is already reserved in {holder}")
            else:
                ticks = book.cursor(network, rng.range_id)
                if time.monotonic() < self._contended_until:
                    ticks += self._random.randrange(min(SHARED_SPREAD, rng.span // 4 + 1))
                found = next_free(spaces, rng, ticks)
                if found is None:
                    raise PoolExhausted(_exhausted_message(network, rng))
                address = found
            book.mark_taken(network, rng.version, address)
            tentative.add((rng.version, address))
            chosen[rng.index] = address

    async def release(self, key: OwnerKey, generation: int | None = None) -> Holding | None:
        async with self._locks.hold(key):
            released = await self.store.release(key, generation)
        if released is not None:
            for lease in released.leases:
                self.book.mark_free(key.network, lease.version, lease.address)
        return released

    async def check(self, key: OwnerKey) -> Holding | None:
        return await self.store.holding(key)

    async def holdings(self, network: str | None) -> list[Holding]:
        return await self.store.holdings(network)

    def status(self, network: str, config: Plan | catalog_pb2.IpamConfig) -> PoolStatus:
        plan = config if isinstance(config, Plan) else plan_of(config)
        size = reserved = 0
        for version in (4, 6):
            space = self.book.peek(network, version)
            for lo, hi in _merged(plan, version):
                size += hi - lo + 1
                reserved += space.count(lo, hi)
        exhausted = tuple(r.index for r in plan.ranges if next_free([self.book.peek(network, r.version)], r, 0) is None)
        return PoolStatus(size, reserved, bool(exhausted), exhausted)

    async def gc(
        self, network: str | None, keep: Callable[[OwnerKey], bool], created_before_ms: int | None = None
    ) -> list[Holding]:
        """Release every owner `keep` rejects. With `created_before_ms`, younger owners are left alone: an ADD
        reserves before the runtime and the catalog record the interface. Each release is conditional on the listed
        generation, so an owner re-created meanwhile is left alone too."""
        released = []
        for held in await self.store.holdings(network):
            if keep(held.key) or (created_before_ms is not None and held.created_ms >= created_before_ms):
                continue
            gone = await self.release(held.key, held.generation)
            if gone is not None:
                released.append(gone)
        return released


def _merged(plan: Plan, version: int) -> list[tuple[int, int]]:
    intervals = sorted(
        (lo, hi) for r in plan.ranges if r.version == version for lo, hi in zip(r.los, r.his, strict=True)
    )
    merged: list[tuple[int, int]] = []
    for lo, hi in intervals:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _exhausted_message(network: str, rng: RangePlan) -> str:
    first, last = Lease(rng.version, rng.start, 0).ip, Lease(rng.version, rng.end, 0).ip
    return f"network {network}: range {rng.index} ({first}-{last}/{rng.prefixlen}) has no free address"
