"""Plans from typed configs, and store URLs: pure, nothing is opened."""

from __future__ import annotations

import pytest
from multinet.v1 import catalog_pb2

from services.common.validate import FieldError
from services.ipam.config import plan_of
from services.ipam.stores import open_store
from services.ipam.stores.etcd import EtcdStore
from services.ipam.stores.sqlite import SqliteStore


def plan(**fields: object) -> catalog_pb2.IpamConfig:
    return catalog_pb2.IpamConfig(ranges=[catalog_pb2.IpRange(**fields)], overlapping_ranges=True)  # type: ignore[arg-type]


def test_bounds_skip_network_and_all_ones_but_not_in_point_to_point_prefixes() -> None:
    (r,) = plan_of(plan(cidr="10.0.0.0/24")).ranges
    assert (r.start & 0xFF, r.end & 0xFF, r.size) == (1, 254, 254)
    (p2p,) = plan_of(plan(cidr="10.0.0.0/31")).ranges
    assert p2p.size == 2
    (v6,) = plan_of(plan(cidr="fd00::/126")).ranges
    assert v6.size == 2


def test_explicit_bounds_are_clamped_to_hosts_and_identify_the_cursor() -> None:
    (r,) = plan_of(plan(cidr="10.0.0.0/24", range_start="10.0.0.0", range_end="10.0.0.9")).ranges
    assert r.range_id == "10.0.0.0/24|10.0.0.1|10.0.0.9"
    edited = plan(cidr="10.0.0.0/24", range_start="10.0.0.0", range_end="10.0.0.9", exclude=["10.0.0.4/32"])
    (same,) = plan_of(edited).ranges
    assert same.range_id == r.range_id and same.size == r.size - 1  # editing exclusions keeps the cursor


def test_a_range_without_any_usable_host_is_refused() -> None:
    with pytest.raises(FieldError) as caught:
        plan_of(plan(cidr="10.0.0.0/30", range_start="10.0.0.3"))
    assert caught.value.field == "config.ranges[0]"


def test_fully_excluded_range_plans_but_has_no_address() -> None:
    (r,) = plan_of(plan(cidr="10.0.0.0/29", exclude=["10.0.0.0/29"])).ranges
    assert r.size == 0 and not r.allows(0x0A000001)


def test_store_urls() -> None:
    sqlite = open_store("sqlite:///var/lib/multinet/ipam.db")
    assert isinstance(sqlite, SqliteStore) and str(sqlite.path) == "/var/lib/multinet/ipam.db"
    assert isinstance(open_store("sqlite:/tmp/x.db"), SqliteStore)
    etcd = open_store("etcd:http://a:2379,http://b:2379?prefix=/team/ipam")
    assert isinstance(etcd, EtcdStore) and etcd.shared
    for bad in ("mysql://x", "etcd:", "etcd:http://a:2379?compress=1", "sqlite:"):
        with pytest.raises(FieldError):
            open_store(bad)
