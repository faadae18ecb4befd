"""The one interface both stores implement. Each write is one atomic transaction; nothing is reported as
reserved before the store has durably recorded it."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from services.ipam.book import AddressBook
from services.ipam.model import Holding, OwnerKey


class Outcome(enum.Enum):
    RESERVED = "reserved"
    OWNER_EXISTS = "owner-exists"  # a repeated ADD: `holding` is what the owner already holds
    ADDRESS_TAKEN = "address-taken"  # `taken` lists (network, version, address) found reserved


@dataclass(frozen=True, slots=True)
class ReserveResult:
    outcome: Outcome
    holding: Holding | None = None
    taken: tuple[tuple[str, int, int], ...] = ()


class Store(Protocol):
    # True when other processes write the same store (etcd replicas): their picks are only seen after the fact.
    shared: bool

    async def start(self, book: AddressBook) -> None:
        """Load every reserved address and cursor into `book`, and keep it in sync with other writers (etcd)."""

    async def reserve(self, holding: Holding, cursors: Mapping[str, int], exclusive_of: Sequence[str]) -> ReserveResult:
        """Atomically: the owner must hold nothing, every address must be free in the owner's network (and in the
        networks `exclusive_of`); then record the owner, its addresses and the cursors (range_id → ticks)."""

    async def holding(self, key: OwnerKey) -> Holding | None:
        """What the owner holds, or None."""

    async def holdings(self, network: str | None) -> list[Holding]:
        """Every owner in a network (None: in every network)."""

    async def release(self, key: OwnerKey, generation: int | None = None) -> Holding | None:
        """Remove the owner and its addresses atomically; with a generation, only if it is still that one."""

    async def aclose(self) -> None: ...
