"""The sparse bitmap and the cursor search: correct at block edges, any IPv6 size, cost independent of pool size."""

from __future__ import annotations

import ipaddress
import random
import time

from multinet.v1 import catalog_pb2

from services.ipam.allocator import BLOCK_SIZE, SparseBitmap, advance, free_in_all, next_free
from services.ipam.config import RangePlan, plan_of


def range_of(cidr: str, **fields: object) -> RangePlan:
    return plan_of(catalog_pb2.IpamConfig(ranges=[catalog_pb2.IpRange(cidr=cidr, **fields)])).ranges[0]  # type: ignore[arg-type]


def test_bitmap_membership_and_counts_across_block_edges() -> None:
    space = SparseBitmap()
    edge = BLOCK_SIZE
    for address in (0, 7, 8, edge - 1, edge, 5 * edge + 3):
        assert space.add(address)
    assert not space.add(edge)
    assert edge in space and edge + 1 not in space
    assert space.total == 6
    assert space.count(0, edge - 1) == 4
    assert space.count(edge - 1, edge) == 2
    assert space.count(0, 10 * edge) == 6
    assert space.discard(edge) and not space.discard(edge)
    assert space.total == 5


def test_find_free_skips_taken_runs_and_full_blocks() -> None:
    space = SparseBitmap()
    space.load_block(0, range(BLOCK_SIZE))  # a full block
    space.load_block(1, range(100))
    assert space.find_free(0, 10 * BLOCK_SIZE) == BLOCK_SIZE + 100
    assert space.find_free(5, BLOCK_SIZE - 1) is None
    assert space.find_free(BLOCK_SIZE + 3, BLOCK_SIZE + 99) is None
    space.discard(BLOCK_SIZE - 2)
    assert space.find_free(0, 10 * BLOCK_SIZE) == BLOCK_SIZE - 2
    assert space.find_free(2 * BLOCK_SIZE + 9, 3 * BLOCK_SIZE) == 2 * BLOCK_SIZE + 9  # missing block: free


def test_find_free_matches_a_brute_force_model() -> None:
    rng = random.Random(7)
    space, model = SparseBitmap(), set()
    for _ in range(3000):
        address = rng.randrange(3 * BLOCK_SIZE)
        space.add(address)
        model.add(address)
    for _ in range(300):
        lo = rng.randrange(3 * BLOCK_SIZE)
        hi = lo + rng.randrange(200)
        expected = next((a for a in range(lo, hi + 1) if a not in model), None)
        assert space.find_free(lo, hi) == expected
        assert space.count(lo, hi) == sum(1 for a in range(lo, hi + 1) if a in model)


def test_free_in_all_finds_an_address_free_everywhere() -> None:
    blue, red = SparseBitmap(), SparseBitmap()
    for a in (10, 11, 13):
        blue.add(a)
    for a in (12, 14):
        red.add(a)
    assert free_in_all([blue, red], 10, 20) == 15
    assert free_in_all([blue, red], 10, 14) is None


def test_exclusions_gateway_network_and_broadcast_are_never_candidates() -> None:
    rng = range_of("10.0.0.0/29", exclude=["10.0.0.2/31"], gateway="10.0.0.1")
    space = SparseBitmap()
    got = []
    while (found := next_free([space], rng, 0)) is not None:
        space.add(found)
        got.append(str(ipaddress.IPv4Address(found)))
    assert got == ["10.0.0.4", "10.0.0.5", "10.0.0.6"]


def test_cursor_moves_forward_and_wraps() -> None:
    rng = range_of("10.0.0.0/29")  # hosts .1-.6
    space, ticks = SparseBitmap(), 0
    first = next_free([space], rng, ticks)
    assert first == int(ipaddress.IPv4Address("10.0.0.1"))
    ticks = advance(ticks, rng, first)
    space.add(first)
    space.discard(first)  # released at once: not handed out again before the range has been gone through
    second = next_free([space], rng, ticks)
    assert second == first + 1
    for _ in range(5):
        found = next_free([space], rng, ticks)
        assert found is not None
        space.add(found)
        ticks = advance(ticks, rng, found)
    assert next_free([space], rng, ticks) == first  # wrapped: .1 was the only free one
    assert advance(ticks, rng, first) > ticks


def test_ipv6_64_and_48_allocate_beyond_the_first_65_and_past_2_64() -> None:
    cases = (
        ("fd00:1::/64", "fd00:1::8000:0:0:fff0", 1 << 63),  # whereabouts stops at the first /65 (int64 offsets)
        ("fd00:2::/48", "fd00:2:0:ffff:ffff::fff0", 1 << 64),  # beyond any 64-bit offset
    )
    for cidr, start, minimum_offset in cases:
        rng = range_of(cidr, range_start=start)
        space, ticks, found = SparseBitmap(), 0, None
        for _ in range(40):  # crosses a 2^16 block edge
            found = next_free([space], rng, ticks)
            assert found is not None
            space.add(found)
            ticks = advance(ticks, rng, found)
        assert found is not None
        assert found - rng.cidr_lo >= minimum_offset + 40
        assert found == int(ipaddress.IPv6Address(start)) + 39
        assert ipaddress.IPv6Address(found) in ipaddress.IPv6Network(cidr)
    huge = range_of("fd00:3::/48")
    assert huge.size == 2**80 - 2
    position = huge.start + (1 << 70)
    assert next_free([SparseBitmap()], huge, 1 << 70) == position


def test_search_cost_does_not_grow_with_pool_size() -> None:
    """A /8 90% full (free addresses spread evenly) against an empty /24: same work per allocation."""
    big = range_of("10.0.0.0/8")
    full = SparseBitmap()
    for b in range(big.cidr_lo >> 16, (big.cidr_hi >> 16) + 1):
        full.load_block(b, (o for o in range(BLOCK_SIZE) if o % 10))
    small = range_of("10.1.0.0/24")

    def rate(space: SparseBitmap, rng: RangePlan, n: int = 2000) -> float:
        ticks, started = 0, time.perf_counter()
        for _ in range(n):
            found = next_free([space], rng, ticks)
            assert found is not None
            ticks = advance(ticks, rng, found)
            space.add(found)
            if rng is small:
                space.discard(found)  # keep the /24 empty
        return n / (time.perf_counter() - started)

    assert rate(full, big) >= 0.5 * rate(SparseBitmap(), small)
