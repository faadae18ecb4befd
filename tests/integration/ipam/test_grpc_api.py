"""Every Ipam RPC through the gRPC servicer on a unix socket, on SQLite and on a real etcd."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from multinet.v1 import catalog_pb2, ipam_pb2

from services.common.whereabouts import parse_ipam_block
from tests.integration.ipam.conftest import Served

pytestmark = pytest.mark.integration


def config(ipam: dict[str, Any], network: str = "blue") -> catalog_pb2.IpamConfig:
    return parse_ipam_block(ipam, network, [])


def allocate(
    network: str, ipam: dict[str, Any], cid: str, ifname: str = "eth0", requested: list[str] | None = None
) -> ipam_pb2.AllocateRequest:
    owner = ipam_pb2.Owner(container_id=cid, ifname=ifname, pod_ref=f"default/{cid}")
    return ipam_pb2.AllocateRequest(network=network, config=config(ipam, network), owner=owner, requested_ips=requested)


async def expect_error(call: Any, code: grpc.StatusCode, *words: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    details = caught.value.details() or ""
    for word in words:
        assert word in details
    return details


async def test_allocate_is_idempotent_check_release_list(ipam: Served) -> None:
    dual = {"range": "10.0.0.0/24", "gateway": "10.0.0.1", "ipRanges": [{"range": "fd00::/64"}]}
    first = await ipam.stub.Allocate(allocate("blue", dual, "c1"))
    assert [(a.address, a.gateway, a.range_index) for a in first.allocations] == [
        ("10.0.0.2/24", "10.0.0.1", 0),
        ("fd00::1/64", "", 1),
    ]
    assert not first.existing
    again = await ipam.stub.Allocate(allocate("blue", dual, "c1"))
    assert again.existing and list(again.allocations) == list(first.allocations)

    owner = ipam_pb2.Owner(container_id="c1", ifname="eth0")
    checked = await ipam.stub.Check(ipam_pb2.CheckRequest(network="blue", owner=owner))
    assert list(checked.allocations) == list(first.allocations)
    listed = await ipam.stub.ListReservations(ipam_pb2.ListReservationsRequest(network="blue"))
    assert sorted(r.address for r in listed.reservations) == ["10.0.0.2", "fd00::1"]
    assert {r.owner.pod_ref for r in listed.reservations} == {"default/c1"}

    released = await ipam.stub.Release(ipam_pb2.ReleaseRequest(network="blue", owner=owner))
    assert sorted(released.released) == ["10.0.0.2", "fd00::1"]
    nothing = await ipam.stub.Release(ipam_pb2.ReleaseRequest(network="blue", owner=owner))
    assert list(nothing.released) == []
    assert not (await ipam.stub.Check(ipam_pb2.CheckRequest(network="blue", owner=owner))).allocations
    # the cursor moved on: the released address is not handed out again at once
    following = await ipam.stub.Allocate(allocate("blue", dual, "c2"))
    assert following.allocations[0].address == "10.0.0.3/24"


async def test_networks_are_independent_domains(ipam: Served) -> None:
    same = {"range": "10.0.0.0/24"}
    blue = await ipam.stub.Allocate(allocate("blue", same, "c"))
    red = await ipam.stub.Allocate(allocate("red", same, "c"))
    assert blue.allocations[0].address == red.allocations[0].address == "10.0.0.1/24"
    exclusive = {"range": "10.0.0.0/24", "enable_overlapping_ranges": False}
    green = await ipam.stub.Allocate(allocate("green", exclusive, "c"))
    assert green.allocations[0].address == "10.0.0.2/24"


async def test_exhaustion_status_and_static_requests(ipam: Served) -> None:
    tiny = {"range": "10.0.0.0/30"}
    status = await ipam.stub.PoolStatus(ipam_pb2.PoolStatusRequest(network="blue", config=config(tiny)))
    assert (status.size, status.reserved, status.exhausted) == (2, 0, False)
    await ipam.stub.Allocate(allocate("blue", tiny, "a", requested=["10.0.0.2"]))
    await ipam.stub.Allocate(allocate("blue", tiny, "b"))
    await expect_error(ipam.stub.Allocate(allocate("blue", tiny, "c")), grpc.StatusCode.RESOURCE_EXHAUSTED, "10.0.0.")
    status = await ipam.stub.PoolStatus(ipam_pb2.PoolStatusRequest(network="blue", config=config(tiny)))
    assert (status.size, status.reserved, status.exhausted) == (2, 2, True)
    wide = {"range": "10.0.0.0/24"}
    await expect_error(
        ipam.stub.Allocate(allocate("blue", wide, "d", requested=["10.0.0.2"])),
        grpc.StatusCode.ALREADY_EXISTS,
        "10.0.0.2",
    )
    await expect_error(
        ipam.stub.Allocate(allocate("blue", wide, "d", requested=["10.7.0.2"])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "requested_ips[0]",
        "outside every range",
    )
    huge = config({"range": "fd00::/48"})
    status = await ipam.stub.PoolStatus(ipam_pb2.PoolStatusRequest(network="blue", config=huge))
    assert status.size == 2**64 - 1  # saturates


async def test_gc_releases_everything_not_kept(ipam: Served) -> None:
    for network, cid in (("blue", "keep"), ("blue", "drop"), ("red", "drop")):
        await ipam.stub.Allocate(allocate(network, {"range": "10.0.0.0/24"}, cid))
    keep = [ipam_pb2.Owner(container_id="keep", ifname="eth0")]
    answer = await ipam.stub.Gc(ipam_pb2.GcRequest(network="blue", keep=keep))
    assert [(r.network, r.owner.container_id) for r in answer.released] == [("blue", "drop")]
    # a keep list is about one network: without one, nothing is released (it would release everything else)
    await expect_error(ipam.stub.Gc(ipam_pb2.GcRequest(keep=keep)), grpc.StatusCode.INVALID_ARGUMENT, "network")
    answer = await ipam.stub.Gc(ipam_pb2.GcRequest(network="red", keep=keep))
    assert [(r.network, r.owner.container_id) for r in answer.released] == [("red", "drop")]
    listed = await ipam.stub.ListReservations(ipam_pb2.ListReservationsRequest())
    assert [(r.network, r.owner.container_id) for r in listed.reservations] == [("blue", "keep")]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"network": "Blue_1"}, "network"),
        ({"network": ""}, "network"),
        ({"owner": ipam_pb2.Owner(ifname="eth0")}, "owner.container_id"),
        ({"owner": ipam_pb2.Owner(container_id="c")}, "owner.ifname"),
        ({"owner": ipam_pb2.Owner(container_id="c", ifname="a/b")}, "owner.ifname"),
        ({"config": catalog_pb2.IpamConfig()}, "config.ranges"),
        ({"config": catalog_pb2.IpamConfig(ranges=[catalog_pb2.IpRange(cidr="10.0.0.0/99")])}, "config.ranges[0].cidr"),
        (
            {
                "config": catalog_pb2.IpamConfig(
                    ranges=[catalog_pb2.IpRange(cidr="10.0.0.0/24", range_start="10.1.0.1")]
                )
            },
            "config.ranges[0].range_start",
        ),
        (
            {
                "config": catalog_pb2.IpamConfig(
                    ranges=[catalog_pb2.IpRange(cidr="10.0.0.0/24", range_start="10.0.0.9", range_end="10.0.0.1")]
                )
            },
            "config.ranges[0].range_end",
        ),
    ],
)
async def test_invalid_fields_are_refused_naming_the_field(ipam: Served, change: dict[str, Any], field: str) -> None:
    request = allocate("blue", {"range": "10.0.0.0/24"}, "c")
    for name, value in change.items():
        if isinstance(value, str):
            setattr(request, name, value)
        else:
            getattr(request, name).CopyFrom(value)
    details = await expect_error(ipam.stub.Allocate(request), grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith(f"{field}: "), details
    await expect_error(
        ipam.stub.Release(ipam_pb2.ReleaseRequest(network="blue", owner=ipam_pb2.Owner(container_id="c"))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "owner.ifname",
    )
    await expect_error(
        ipam.stub.Gc(ipam_pb2.GcRequest(network="blue", keep=[ipam_pb2.Owner(ifname="eth0")])),
        grpc.StatusCode.INVALID_ARGUMENT,
        "keep[0].container_id",
    )
