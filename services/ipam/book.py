"""The in-memory index of one IPAM process: taken addresses per (network, family) and each range's cursor.

With SQLite it is the authority (one process owns the file and writes through it); with etcd it is a hint kept
in sync by a watch, and the store's compare-and-swap is the authority (a stale hint costs a retry, never a
duplicate)."""

from __future__ import annotations

from collections.abc import Iterable

from services.ipam.allocator import SparseBitmap


class AddressBook:
    def __init__(self) -> None:
        self._spaces: dict[tuple[str, int], SparseBitmap] = {}
        self._cursors: dict[tuple[str, str], int] = {}

    def space(self, network: str, version: int) -> SparseBitmap:
        space = self._spaces.get((network, version))
        if space is None:
            space = self._spaces[(network, version)] = SparseBitmap()
        return space

    def peek(self, network: str, version: int) -> SparseBitmap:
        """The space if it exists, else an empty one that is not kept (read-only questions create nothing)."""
        return self._spaces.get((network, version)) or SparseBitmap()

    def spaces(self, network: str, version: int, exclusive: bool) -> list[SparseBitmap]:
        """Where an address must be free: this network, and with exclusive configs every other network too."""
        own = self.space(network, version)
        if not exclusive:
            return [own]
        return [own, *(s for (n, v), s in self._spaces.items() if v == version and n != network)]

    def networks(self) -> list[str]:
        return sorted({n for n, _ in self._spaces})

    def taken(self, network: str, version: int, address: int) -> bool:
        space = self._spaces.get((network, version))
        return space is not None and address in space

    def mark_taken(self, network: str, version: int, address: int) -> bool:
        return self.space(network, version).add(address)

    def mark_free(self, network: str, version: int, address: int) -> bool:
        space = self._spaces.get((network, version))
        return space is not None and space.discard(address)

    def load_block(self, network: str, version: int, block: int, offsets: Iterable[int]) -> None:
        self.space(network, version).load_block(block, offsets)

    def cursor(self, network: str, range_id: str) -> int:
        return self._cursors.get((network, range_id), 0)

    def set_cursor(self, network: str, range_id: str, ticks: int) -> None:
        """Cursors only move forward: a replica that sees an older value (a late watch event) keeps its own."""
        key = (network, range_id)
        if ticks > self._cursors.get(key, 0):
            self._cursors[key] = ticks

    def clear(self) -> None:
        self._spaces.clear()
        self._cursors.clear()
