"""whereabouts-compatible parsing: same meaning for valid configs, a named field for every invalid value."""

from __future__ import annotations

from typing import Any

import pytest
from multinet.v1 import catalog_pb2

from services.common.validate import FieldError
from services.common.whereabouts import parse_ipam_block, validate_ipam_config


def parse(ipam: dict[str, Any], network: str = "blue", defaults: list[str] | None = None) -> catalog_pb2.IpamConfig:
    return parse_ipam_block(ipam, network, defaults if defaults is not None else ["10.9.0.0/16"])


def field_of(ipam: dict[str, Any], network: str = "blue", defaults: list[str] | None = None) -> str:
    with pytest.raises(FieldError) as caught:
        parse(ipam, network, defaults)
    return caught.value.field


def test_network_range_is_the_default() -> None:
    config = parse({"type": "whereabouts"}, defaults=["10.9.0.0/16", "fd09::/64"])
    assert [r.cidr for r in config.ranges] == ["10.9.0.0/16", "fd09::/64"]
    assert config.overlapping_ranges is True


def test_range_with_host_bits_means_its_network_as_in_whereabouts() -> None:
    (r,) = parse({"range": "192.168.2.225/28"}).ranges
    assert (r.cidr, r.range_start, r.range_end) == ("192.168.2.224/28", "", "")


def test_dash_form_sets_start_and_end() -> None:
    (r,) = parse({"range": "192.168.2.225-192.168.2.230/28"}).ranges
    assert (r.cidr, r.range_start, r.range_end) == ("192.168.2.224/28", "192.168.2.225", "192.168.2.230")


def test_explicit_start_end_and_excludes() -> None:
    config = parse(
        {
            "range": "10.0.0.0/24",
            "range_start": "10.0.0.10",
            "range_end": "10.0.0.20",
            "exclude": ["10.0.0.12/30", "10.0.0.15"],
        }
    )
    (r,) = config.ranges
    assert (r.range_start, r.range_end, list(r.exclude)) == ("10.0.0.10", "10.0.0.20", ["10.0.0.12/30", "10.0.0.15/32"])


def test_ip_ranges_dual_stack_and_gateway_to_its_family() -> None:
    config = parse(
        {
            "range": "10.0.0.0/24",
            "ipRanges": [{"range": "fd00::/64", "exclude": ["fd00::1"]}],
            "gateway": "10.0.0.1",
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "fd10::/48", "gw": "fd00::1"}],
            "dns": {"nameservers": ["10.0.0.53"], "search": ["svc"]},
            "network_name": "blue",
            "enable_overlapping_ranges": False,
        }
    )
    assert [(r.cidr, r.gateway) for r in config.ranges] == [("10.0.0.0/24", "10.0.0.1"), ("fd00::/64", "")]
    assert list(config.ranges[1].exclude) == ["fd00::1/128"]
    assert [(x.dst, x.gw) for x in config.routes] == [("0.0.0.0/0", ""), ("fd10::/48", "fd00::1")]
    assert list(config.dns_nameservers) == ["10.0.0.53"]
    assert config.overlapping_ranges is False
    validate_ipam_config(config)


def test_gateway_outside_every_cidr_goes_to_its_family_as_an_l3_next_hop() -> None:
    config = parse({"ipRanges": [{"range": "10.0.0.0/24"}, {"range": "10.1.0.0/24"}], "gateway": "169.254.1.1"})
    assert [r.gateway for r in config.ranges] == ["169.254.1.1", "169.254.1.1"]


def test_top_level_exclude_applies_to_default_ranges_of_its_family() -> None:
    config = parse({"exclude": ["10.9.0.0/24"]}, defaults=["10.9.0.0/16", "fd09::/64"])
    assert [list(r.exclude) for r in config.ranges] == [["10.9.0.0/24"], []]


@pytest.mark.parametrize(
    ("ipam", "field"),
    [
        ({"range": "10.0.0.0/33"}, "ipam.range"),
        ({"range": "nonsense"}, "ipam.range"),
        ({"range": "10.0.0.0/24", "range_start": "10.0.1.1"}, "ipam.range_start"),
        ({"range": "10.0.0.0/24", "range_start": "10.0.0.9", "range_end": "10.0.0.3"}, "ipam.range_end"),
        ({"range": "10.0.0.0/24", "range_end": "fd00::1"}, "ipam.range_end"),
        ({"range": "10.0.0.0/24", "range_start": 5}, "ipam.range_start"),
        ({"range_start": "10.0.0.1"}, "ipam.range_start"),
        ({"range": "192.168.1.5-192.168.2.25/28"}, "ipam.range"),
        ({"range": "10.0.0.9-10.0.0.3/24"}, "ipam.range"),
        ({"range": "10.0.0.1-10.0.0.9"}, "ipam.range"),
        ({"range": "10.0.0.1-10.0.0.9/24", "range_start": "10.0.0.2"}, "ipam.range_start"),
        ({"range": "10.0.0.0/24", "exclude": ["10.1.0.0/24"]}, "ipam.exclude[0]"),
        ({"range": "10.0.0.0/24", "exclude": ["10.0.0.1", "bogus"]}, "ipam.exclude[1]"),
        ({"range": "10.0.0.0/24", "exclude": "10.0.0.1"}, "ipam.exclude"),
        ({"ipRanges": [{"range": "10.0.0.0/24"}, {"range": "fd00::/129"}]}, "ipam.ipRanges[1].range"),
        ({"ipRanges": [{"range_start": "10.0.0.1"}]}, "ipam.ipRanges[0].range"),
        ({"ipRanges": [{"range": "10.0.0.0/24", "gateway": "10.0.0.1"}]}, "ipam.ipRanges[0].gateway"),
        ({"ipRanges": [{"range": "10.0.0.0/24"}], "exclude": ["10.0.0.1"]}, "ipam.exclude"),
        ({"ipRanges": "10.0.0.0/24"}, "ipam.ipRanges"),
        ({"range": "10.0.0.0/24", "gateway": "fd00::1"}, "ipam.gateway"),
        ({"range": "10.0.0.0/24", "gateway": "10.0.0.300"}, "ipam.gateway"),
        ({"range": "10.0.0.0/24", "routes": [{"dst": "10.1.2.3/16"}]}, "ipam.routes[0].dst"),
        ({"range": "10.0.0.0/24", "routes": [{"dst": "10.1.0.0/16", "gw": "fd00::1"}]}, "ipam.routes[0].gw"),
        ({"range": "10.0.0.0/24", "routes": [{"dst": "10.1.0.0/16", "via": "x"}]}, "ipam.routes[0].via"),
        ({"range": "10.0.0.0/24", "dns": {"nameservers": ["x"]}}, "ipam.dns.nameservers[0]"),
        ({"range": "10.0.0.0/24", "enable_overlapping_ranges": "false"}, "ipam.enable_overlapping_ranges"),
        ({"range": "10.0.0.0/24", "range_stat": "10.0.0.5"}, "ipam.range_stat"),
    ],
)
def test_invalid_values_are_refused_with_the_field_named(ipam: dict[str, Any], field: str) -> None:
    assert field_of(ipam) == field


def test_network_name_must_be_the_attachments_network_and_says_why() -> None:
    with pytest.raises(FieldError) as caught:
        parse({"range": "10.0.0.0/24", "network_name": "red"}, network="blue")
    assert caught.value.field == "ipam.network_name"
    assert "own address domain" in str(caught.value) and "'blue'" in str(caught.value)


def test_no_range_anywhere_is_refused() -> None:
    assert field_of({}, defaults=[]) == "ipam.range"


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (catalog_pb2.IpamConfig(), "config.ranges"),
        (catalog_pb2.IpamConfig(ranges=[catalog_pb2.IpRange(cidr="10.0.0.1/24")]), "config.ranges[0].cidr"),
        (
            catalog_pb2.IpamConfig(ranges=[catalog_pb2.IpRange(cidr="10.0.0.0/24", range_start="10.0.1.0")]),
            "config.ranges[0].range_start",
        ),
        (
            catalog_pb2.IpamConfig(
                ranges=[catalog_pb2.IpRange(cidr="10.0.0.0/24", range_start="10.0.0.9", range_end="10.0.0.2")]
            ),
            "config.ranges[0].range_end",
        ),
        (
            catalog_pb2.IpamConfig(ranges=[catalog_pb2.IpRange(cidr="10.0.0.0/24", exclude=["fd00::/64"])]),
            "config.ranges[0].exclude[0]",
        ),
        (
            catalog_pb2.IpamConfig(ranges=[catalog_pb2.IpRange(cidr="10.0.0.0/24", gateway="x")]),
            "config.ranges[0].gateway",
        ),
    ],
)
def test_typed_config_from_grpc_is_validated(config: catalog_pb2.IpamConfig, field: str) -> None:
    with pytest.raises(FieldError) as caught:
        validate_ipam_config(config)
    assert caught.value.field == field
