"""IpamCore over a stateful in-memory store: domains per network, idempotency, statics, conflicts, gc."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import random
from typing import Any

import pytest
from multinet.v1 import catalog_pb2

from services.common.validate import FieldError
from services.common.whereabouts import parse_ipam_block
from services.ipam.core import SHARED_SPREAD, IpamCore
from services.ipam.errors import AddressTaken, PoolExhausted, StoreUnavailable
from services.ipam.model import Holding, OwnerKey
from tests.unit.ipam.fakes import MemoryStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def cfg(ipam: dict[str, Any], network: str = "blue") -> catalog_pb2.IpamConfig:
    return parse_ipam_block(ipam, network, [])


async def make_core(store: MemoryStore | None = None, clock: Clock | None = None) -> IpamCore:
    core = IpamCore(store or MemoryStore(), clock=clock or Clock())
    await core.start()
    return core


async def ips(core: IpamCore, network: str, config: catalog_pb2.IpamConfig, cid: str, **kw: Any) -> list[str]:
    result = await core.allocate(network, config, OwnerKey(network, cid, "eth0"), **kw)
    return [lease.ip for lease in result.leases]


async def test_overlapping_ranges_inside_one_network_never_share_an_address() -> None:
    core = await make_core()
    wide, narrow = cfg({"range": "10.0.0.0/24"}), cfg({"range": "10.0.0.0/27", "range_start": "10.0.0.3"})
    got = []
    for i in range(10):
        got += await ips(core, "blue", wide, f"w{i}")
        got += await ips(core, "blue", narrow, f"n{i}")
    assert len(got) == len(set(got)) == 20


async def test_same_cidr_on_two_networks_allocates_independently() -> None:
    core = await make_core()
    config = cfg({"range": "10.0.0.0/24"})
    assert await ips(core, "blue", config, "a") == await ips(core, "red", config, "a") == ["10.0.0.1"]
    assert await ips(core, "blue", config, "b") == ["10.0.0.2"]


async def test_exclusions_and_gateway_are_skipped() -> None:
    core = await make_core()
    config = cfg({"range": "10.0.0.0/24", "exclude": ["10.0.0.0/30", "10.0.0.5"], "gateway": "10.0.0.4"})
    assert [(await ips(core, "blue", config, f"c{i}"))[0] for i in range(3)] == ["10.0.0.6", "10.0.0.7", "10.0.0.8"]


async def test_dash_form_range_bounds_allocation() -> None:
    core = await make_core()
    config = cfg({"range": "10.0.0.250-10.0.0.251/24"})
    assert [(await ips(core, "blue", config, f"c{i}"))[0] for i in range(2)] == ["10.0.0.250", "10.0.0.251"]
    with pytest.raises(PoolExhausted, match=r"10\.0\.0\.250-10\.0\.0\.251"):
        await ips(core, "blue", config, "c3")


async def test_dual_stack_gets_one_address_per_range_with_prefix_and_gateway() -> None:
    core = await make_core()
    config = cfg({"ipRanges": [{"range": "10.0.0.0/24"}, {"range": "fd00::/64"}], "gateway": "fd00::1"})
    result = await core.allocate("blue", config, OwnerKey("blue", "c", "eth0"))
    assert [(x.cidr, x.gateway, x.range_index) for x in result.leases] == [
        ("10.0.0.1/24", "", 0),
        ("fd00::2/64", "fd00::1", 1),
    ]


async def test_released_addresses_are_not_handed_out_again_at_once() -> None:
    core = await make_core()
    config = cfg({"range": "10.0.0.0/29"})  # 6 hosts
    first = await ips(core, "blue", config, "c0")
    await core.release(OwnerKey("blue", "c0", "eth0"))
    following = [(await ips(core, "blue", config, f"c{i}"))[0] for i in range(1, 6)]
    assert first[0] not in following
    assert await ips(core, "blue", config, "c6") == first  # only after the whole range has been gone through


async def test_cursor_survives_a_restart_through_the_store() -> None:
    store = MemoryStore()
    core = await make_core(store)
    config = cfg({"range": "10.0.0.0/24"})
    await ips(core, "blue", config, "a")
    await core.release(OwnerKey("blue", "a", "eth0"))
    restarted = await make_core(store)
    assert await ips(restarted, "blue", config, "b") == ["10.0.0.2"]


async def test_exhaustion_and_pool_status() -> None:
    core = await make_core()
    config = cfg({"range": "10.0.0.0/30"})  # .1 and .2
    assert core.status("blue", config).exhausted is False
    await ips(core, "blue", config, "a")
    await ips(core, "blue", config, "b")
    with pytest.raises(PoolExhausted, match="no free address"):
        await ips(core, "blue", config, "c")
    status = core.status("blue", config)
    assert (status.size, status.reserved, status.exhausted) == (2, 2, True)
    assert await ips(core, "blue", config, "a") == ["10.0.0.1"]  # a repeated ADD still succeeds when full
    assert core.status("red", config).exhausted is False


async def test_add_is_idempotent_per_network_container_and_ifname() -> None:
    store = MemoryStore()
    core = await make_core(store)
    config = cfg({"range": "10.0.0.0/24"})
    first = await core.allocate("blue", config, OwnerKey("blue", "c", "eth0"))
    again = await core.allocate("blue", config, OwnerKey("blue", "c", "eth0"))
    assert (again.leases, again.existing, first.existing) == (first.leases, True, False)
    other_if = await core.allocate("blue", config, OwnerKey("blue", "c", "eth1"))
    assert other_if.leases != first.leases
    assert len(store.owners) == 2


async def test_concurrent_adds_of_one_owner_reserve_once() -> None:
    store = MemoryStore()
    core = await make_core(store)
    config = cfg({"range": "10.0.0.0/24"})
    results = await asyncio.gather(*(core.allocate("blue", config, OwnerKey("blue", "c", "eth0")) for _ in range(5)))
    assert len({r.leases for r in results}) == 1
    assert sum(not r.existing for r in results) == 1
    assert len(store.addresses) == 1


async def test_release_check_and_release_of_nothing() -> None:
    core = await make_core()
    config = cfg({"range": "10.0.0.0/24"})
    key = OwnerKey("blue", "c", "eth0")
    await core.allocate("blue", config, key)
    held = await core.check(key)
    assert held is not None and held.leases[0].ip == "10.0.0.1"
    released = await core.release(key)
    assert released is not None and released.leases == held.leases
    assert await core.check(key) is None
    assert await core.release(key) is None  # DEL of something already gone succeeds, with nothing released


async def test_static_request_reserves_exactly_that_address() -> None:
    core = await make_core()
    config = cfg({"range": "10.0.0.0/24", "range_start": "10.0.0.100", "ipRanges": [{"range": "fd00::/64"}]})
    got = await ips(core, "blue", config, "s", requested=["10.0.0.7/24"])  # outside range_start..end, in the CIDR
    assert got == ["10.0.0.7", "fd00::1"]
    assert await ips(core, "blue", config, "s", requested=["10.0.0.7"]) == got  # repeated ADD
    with pytest.raises(AddressTaken, match=r"10\.0\.0\.7 is already reserved in blue"):
        await ips(core, "blue", config, "t", requested=["10.0.0.7"])
    assert await ips(core, "red", config, "t", requested=["10.0.0.7"]) == ["10.0.0.7", "fd00::1"]


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        (["10.1.0.7"], "outside every range"),
        (["10.0.0.255"], "network, broadcast or gateway"),
        (["10.0.0.7", "10.0.0.8"], "one address per range"),
        (["10.0.0.7", "10.0.0.7"], "requested twice"),
        (["not-an-ip"], "not an IPv4/IPv6 address"),
    ],
)
async def test_static_requests_that_cannot_be_honoured_name_the_field(requested: list[str], message: str) -> None:
    core = await make_core()
    with pytest.raises(FieldError, match=message) as caught:
        await ips(core, "blue", cfg({"range": "10.0.0.0/24"}), "s", requested=requested)
    assert caught.value.field.startswith("requested_ips[")


async def test_exclusive_config_avoids_addresses_of_every_other_network() -> None:
    core = await make_core()
    shared = cfg({"range": "10.0.0.0/24"})
    await ips(core, "red", shared, "r1")  # 10.0.0.1 in red
    await ips(core, "red", shared, "r2")  # 10.0.0.2 in red
    exclusive = cfg({"range": "10.0.0.0/24", "enable_overlapping_ranges": False})
    assert await ips(core, "blue", exclusive, "b1") == ["10.0.0.3"]
    assert await ips(core, "green", shared, "g1") == ["10.0.0.1"]  # overlapping allowed by default
    with pytest.raises(AddressTaken, match="another network"):
        await ips(core, "blue", exclusive, "b2", requested=["10.0.0.2"])


async def test_conflict_with_another_replica_marks_taken_and_retries() -> None:
    store = MemoryStore()
    core = await make_core(store)
    config = cfg({"range": "10.0.0.0/24"})

    def other_replica_wins(holding: Holding) -> None:
        if store.reserve_calls <= 2:  # the next two candidates are taken just before our write
            lease = holding.leases[0]
            store.take(OwnerKey("blue", f"other{store.reserve_calls}", "eth0"), lease.version, lease.address)

    store.before_reserve = other_replica_wins
    assert await ips(core, "blue", config, "c") == ["10.0.0.3"]
    assert store.reserve_calls == 3
    assert core.book.taken("blue", 4, int(ipaddress.IPv4Address("10.0.0.1")))


async def test_store_unavailable_leaves_nothing_marked() -> None:
    store = MemoryStore()
    core = await make_core(store)
    config = cfg({"range": "10.0.0.0/24"})
    store.down = True
    with pytest.raises(StoreUnavailable):
        await ips(core, "blue", config, "c")
    assert core.status("blue", config).reserved == 0
    store.down = False
    assert await ips(core, "blue", config, "c") == ["10.0.0.1"]


async def test_gc_releases_all_but_kept_and_spares_young_ones_when_asked() -> None:
    clock = Clock()
    core = await make_core(clock=clock)
    config = cfg({"range": "10.0.0.0/24"})
    for cid in ("old-live", "old-gone"):
        await ips(core, "blue", config, cid)
    await ips(core, "red", config, "old-gone")
    clock.now += 300
    await ips(core, "blue", config, "young-gone")
    live = {OwnerKey("blue", "old-live", "eth0")}
    released = await core.gc(None, live.__contains__, created_before_ms=int((clock.now - 120) * 1000))
    assert sorted((h.key.network, h.key.container_id) for h in released) == [("blue", "old-gone"), ("red", "old-gone")]
    assert {h.key.container_id for h in await core.holdings("blue")} == {"old-live", "young-gone"}
    everything = await core.gc("blue", lambda key: False)
    assert {h.key.container_id for h in everything} == {"old-live", "young-gone"}


async def test_gc_never_releases_an_owner_re_created_after_the_listing() -> None:
    store = MemoryStore()
    core = await make_core(store)
    config = cfg({"range": "10.0.0.0/24"})
    key = OwnerKey("blue", "c", "eth0")
    await core.allocate("blue", config, key)
    listed = await core.holdings("blue")
    await core.release(key)
    await core.allocate("blue", config, key)  # same key, re-created
    assert await core.release(key, listed[0].generation) is None
    assert await core.check(key) is not None


async def test_replicas_spread_their_picks_forward_of_the_cursor_once_contended() -> None:
    store = MemoryStore(shared=True)
    core = IpamCore(store, clock=Clock(), rng=random.Random(1))
    await core.start()
    config = cfg({"range": "10.0.0.0/16"})
    alone = [(await ips(core, "blue", config, f"a{i}"))[0] for i in range(3)]
    assert alone == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]  # a lone writer stays sequential

    def other_replica_wins_once(holding: Holding) -> None:
        if store.reserve_calls == 4:
            store.take(OwnerKey("blue", "other", "eth0"), 4, holding.leases[0].address)

    store.before_reserve = other_replica_wins_once
    got = [int(ipaddress.IPv4Address((await ips(core, "blue", config, f"c{i}"))[0])) for i in range(50)]
    assert len(set(got)) == 50
    assert got[-1] - got[0] > 49  # spread, not the lockstep sequence .5, .6, .7 ...
    for previous, current in itertools.pairwise(got):
        assert 0 < current - previous <= SHARED_SPREAD  # only forward, within the spread
