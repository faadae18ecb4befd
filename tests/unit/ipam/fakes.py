"""A stateful in-memory store with the real stores' semantics (atomic reserve with owner/address checks,
conditional release), plus a hook to play another replica that wins a race."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from services.ipam.book import AddressBook
from services.ipam.errors import StoreUnavailable
from services.ipam.model import Holding, OwnerKey
from services.ipam.stores.base import Outcome, ReserveResult


class MemoryStore:
    def __init__(self, shared: bool = False) -> None:
        self.shared = shared
        self.owners: dict[OwnerKey, Holding] = {}
        self.addresses: dict[tuple[str, int, int], OwnerKey] = {}
        self.cursors: dict[tuple[str, str], int] = {}
        self.before_reserve: Callable[[Holding], None] | None = None  # e.g. another replica takes an address
        self.down = False
        self.reserve_calls = 0
        self._generation = 0

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("memory store is down")

    async def start(self, book: AddressBook) -> None:
        for network, version, address in self.addresses:
            book.mark_taken(network, version, address)
        for (network, range_id), ticks in self.cursors.items():
            book.set_cursor(network, range_id, ticks)

    async def reserve(self, holding: Holding, cursors: Mapping[str, int], exclusive_of: Sequence[str]) -> ReserveResult:
        self._check()
        self.reserve_calls += 1
        if self.before_reserve is not None:
            self.before_reserve(holding)
        key = holding.key
        if key in self.owners:
            return ReserveResult(Outcome.OWNER_EXISTS, holding=self.owners[key])
        taken = tuple(
            (network, lease.version, lease.address)
            for network in (key.network, *exclusive_of)
            for lease in holding.leases
            if (network, lease.version, lease.address) in self.addresses
        )
        if taken:
            return ReserveResult(Outcome.ADDRESS_TAKEN, taken=taken)
        self._generation += 1
        saved = Holding(key, holding.leases, holding.pod_ref, holding.created_ms, self._generation)
        self.owners[key] = saved
        for lease in holding.leases:
            self.addresses[(key.network, lease.version, lease.address)] = key
        for range_id, ticks in cursors.items():
            self.cursors[(key.network, range_id)] = ticks
        return ReserveResult(Outcome.RESERVED, holding=saved)

    def take(self, key: OwnerKey, version: int, address: int) -> None:
        """Another writer (replica) records a reservation this process's book has not seen."""
        self._generation += 1
        self.owners[key] = Holding(key, (), generation=self._generation)
        self.addresses[(key.network, version, address)] = key

    async def holding(self, key: OwnerKey) -> Holding | None:
        self._check()
        return self.owners.get(key)

    async def holdings(self, network: str | None) -> list[Holding]:
        self._check()
        return [h for k, h in sorted(self.owners.items(), key=lambda i: repr(i[0])) if network in (None, k.network)]

    async def release(self, key: OwnerKey, generation: int | None = None) -> Holding | None:
        self._check()
        found = self.owners.get(key)
        if found is None or (generation is not None and generation != found.generation):
            return None
        del self.owners[key]
        for lease in found.leases:
            self.addresses.pop((key.network, lease.version, lease.address), None)
        return found

    async def aclose(self) -> None:
        return None
