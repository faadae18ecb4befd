"""Which addresses are taken, and the next free one after a range's cursor, at a cost independent of pool size.

A network's addresses (per family) are a sparse bitmap of 2^16-address blocks: a /8 is 256 blocks (2 MiB), a
/64 only holds the blocks where something is reserved (a missing block is entirely free). The next free address
is found by skipping full blocks by their count and searching inside a block for a byte that is not 0xff with a
regex — C speed, never a Python loop over addresses. Pure: no I/O."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence

from services.ipam.config import RangePlan

BLOCK_BITS = 16
BLOCK_SIZE = 1 << BLOCK_BITS
_BLOCK_MASK = BLOCK_SIZE - 1
_NOT_FULL = re.compile(rb"[^\xff]")


def _lowest_zero(byte: int) -> int:
    return (~byte & (byte + 1)).bit_length() - 1


def _first_zero(block: bytearray, lo: int, hi: int) -> int | None:
    """The first clear bit in [lo, hi] (offsets inside the block)."""
    i = lo >> 3
    byte = block[i] | ((1 << (lo & 7)) - 1)  # bits below lo count as taken
    if byte != 0xFF:
        offset = (i << 3) | _lowest_zero(byte)
        return offset if offset <= hi else None
    match = _NOT_FULL.search(block, i + 1, (hi >> 3) + 1)
    if match is None:
        return None
    j = match.start()
    offset = (j << 3) | _lowest_zero(block[j])
    return offset if offset <= hi else None


class SparseBitmap:
    """A set of integers (addresses of one family), dense where it is used."""

    __slots__ = ("_blocks", "_counts", "total")

    def __init__(self) -> None:
        self._blocks: dict[int, bytearray] = {}
        self._counts: dict[int, int] = {}
        self.total = 0

    def __contains__(self, address: int) -> bool:
        block = self._blocks.get(address >> BLOCK_BITS)
        return block is not None and bool(block[(address & _BLOCK_MASK) >> 3] >> (address & 7) & 1)

    def add(self, address: int) -> bool:
        """Mark taken; False when it already was."""
        b = address >> BLOCK_BITS
        block = self._blocks.get(b)
        if block is None:
            block = self._blocks[b] = bytearray(BLOCK_SIZE >> 3)
            self._counts[b] = 0
        i, bit = (address & _BLOCK_MASK) >> 3, 1 << (address & 7)
        if block[i] & bit:
            return False
        block[i] |= bit
        self._counts[b] += 1
        self.total += 1
        return True

    def discard(self, address: int) -> bool:
        """Mark free; False when it already was. An emptied block is dropped (sparse IPv6 stays small)."""
        b = address >> BLOCK_BITS
        block = self._blocks.get(b)
        i, bit = (address & _BLOCK_MASK) >> 3, 1 << (address & 7)
        if block is None or not block[i] & bit:
            return False
        block[i] &= ~bit
        self.total -= 1
        self._counts[b] -= 1
        if not self._counts[b]:
            del self._blocks[b], self._counts[b]
        return True

    def load_block(self, b: int, offsets: Iterable[int]) -> None:
        """Bulk load at start-up (millions of reservations): one block, offsets inside it."""
        block = self._blocks.setdefault(b, bytearray(BLOCK_SIZE >> 3))
        for offset in offsets:
            block[offset >> 3] |= 1 << (offset & 7)
        count = int.from_bytes(block, "little").bit_count()
        self.total += count - self._counts.get(b, 0)
        self._counts[b] = count

    def find_free(self, lo: int, hi: int) -> int | None:
        """The first address in [lo, hi] not in the set."""
        address = lo
        while address <= hi:
            b = address >> BLOCK_BITS
            block = self._blocks.get(b)
            if block is None:
                return address
            last = min(hi, b << BLOCK_BITS | _BLOCK_MASK)
            if self._counts[b] < BLOCK_SIZE:
                found = _first_zero(block, address & _BLOCK_MASK, last & _BLOCK_MASK)
                if found is not None:
                    return b << BLOCK_BITS | found
            address = last + 1
        return None

    def count(self, lo: int, hi: int) -> int:
        """How many of [lo, hi] are in the set; visits only blocks that exist."""
        first, last = lo >> BLOCK_BITS, hi >> BLOCK_BITS
        if last - first + 1 <= len(self._blocks):
            blocks: Iterable[int] = (b for b in range(first, last + 1) if b in self._blocks)
        else:
            blocks = (b for b in self._blocks if first <= b <= last)
        total = 0
        for b in blocks:
            a = max(lo, b << BLOCK_BITS) & _BLOCK_MASK
            z = min(hi, b << BLOCK_BITS | _BLOCK_MASK) & _BLOCK_MASK
            if a == 0 and z == _BLOCK_MASK:
                total += self._counts[b]
            else:
                bits = int.from_bytes(self._blocks[b], "little") >> a
                total += (bits & ((1 << (z - a + 1)) - 1)).bit_count()
        return total


def free_in_all(spaces: Sequence[SparseBitmap], lo: int, hi: int) -> int | None:
    """The first address of [lo, hi] free in every space (one network, or all of them for exclusive configs)."""
    address = lo
    while True:
        moved = False
        for space in spaces:
            found = space.find_free(address, hi)
            if found is None:
                return None
            if found != address:
                address, moved = found, True
        if not moved:
            return address


def next_free(spaces: Sequence[SparseBitmap], rng: RangePlan, ticks: int) -> int | None:
    """The first free address of the range at or after its cursor, wrapping around once."""
    if not rng.los:
        return None
    position = rng.start + ticks % rng.span
    i = max(0, bisect.bisect_right(rng.los, position) - 1)
    for lo, hi in zip(rng.los[i:], rng.his[i:], strict=True):
        if hi >= position and (found := free_in_all(spaces, max(lo, position), hi)) is not None:
            return found
    for lo, hi in zip(rng.los[: i + 1], rng.his[: i + 1], strict=True):
        if lo < position and (found := free_in_all(spaces, lo, min(hi, position - 1))) is not None:
            return found
    return None


def advance(ticks: int, rng: RangePlan, address: int) -> int:
    """The cursor after handing out `address`: it only moves forward (monotonic ticks; position = ticks mod span),
    so a released address is handed out again only after the whole range has been gone through."""
    position = ticks % rng.span
    return ticks + (address - rng.start - position) % rng.span + 1
