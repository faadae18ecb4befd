"""Results printed in the requested CNI version, chained after a previous plugin's result."""

from __future__ import annotations

import pytest
from multinet.v1 import catalog_pb2

from services.netmgr.cni.errors import CniFailure, Code
from services.netmgr.cni.result import add_result, dns_of, error_result, version_result
from tests.integration.cni_spec import SCHEMA, schema_problems


def iface() -> catalog_pb2.PodInterface:
    return catalog_pb2.PodInterface(
        network="blue",
        ifname="eth1",
        netns="/var/run/netns/p",
        host_ifname="mnabc",
        mac="02:00:00:00:00:01",
        mtu=1350,
        ips=["10.1.0.5/32", "fd00::5/128"],
        gateways=["169.254.1.1", "fe80::1"],
        routes=[catalog_pb2.Route(dst="10.1.0.0/16", gw="169.254.1.1")],
    )


def test_1_0_result_shape() -> None:
    result = add_result("1.0.0", iface(), None)
    assert result["cniVersion"] == "1.0.0"
    assert result["interfaces"][1] == {"name": "eth1", "mac": "02:00:00:00:00:01", "sandbox": "/var/run/netns/p"}
    assert result["ips"][0] == {"address": "10.1.0.5/32", "interface": 1, "gateway": "169.254.1.1"}
    assert "version" not in result["ips"][0]
    assert result["routes"] == [{"dst": "10.1.0.0/16", "gw": "169.254.1.1"}]


def test_0_3_1_result_carries_ip_versions() -> None:
    result = add_result("0.3.1", iface(), None)
    assert [ip["version"] for ip in result["ips"]] == ["4", "6"]


def test_1_1_result_reports_mtu() -> None:
    assert add_result("1.1.0", iface(), None)["interfaces"][1]["mtu"] == 1350


def test_chained_after_previous_result() -> None:
    prev = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0"}],
        "ips": [{"address": "10.9.0.2/24", "interface": 0}],
    }
    result = add_result("1.0.0", iface(), prev)
    assert [i["name"] for i in result["interfaces"]] == ["eth0", "mnabc", "eth1"]
    assert result["ips"][0]["address"] == "10.9.0.2/24"
    assert result["ips"][1]["interface"] == 2
    assert prev["interfaces"] == [{"name": "eth0"}]  # the input is not modified


def test_error_and_version_results() -> None:
    err = error_result("0.4.0", CniFailure(Code.POOL_EXHAUSTED, "pool exhausted", "blue: 254 of 254"))
    assert err == {"cniVersion": "0.4.0", "code": 102, "msg": "pool exhausted", "details": "blue: 254 of 254"}
    assert version_result(None)["supportedVersions"][-1] == "1.1.0"


# ------------------------------------------------------------------------------------------------ schema per version
@pytest.mark.parametrize("version", list(SCHEMA))
def test_result_matches_the_spec_schema_of_each_version(version: str) -> None:
    one = iface()
    one.dns.CopyFrom(catalog_pb2.Dns(nameservers=["10.1.0.53"], domain="blue.local"))
    result = add_result(version, one, None)
    assert schema_problems(version, result) == []
    assert result["dns"] == {"nameservers": ["10.1.0.53"], "domain": "blue.local"}
    assert ("mtu" in result["interfaces"][1]) == (version == "1.1.0")


@pytest.mark.parametrize("version", list(SCHEMA))
def test_chained_prev_result_is_normalised_to_the_version(version: str) -> None:
    prev = {
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/p"}],
        "ips": [{"version": "4", "address": "10.9.0.2/24", "interface": 0}, {"address": "fd09::2/64", "interface": 0}],
        "dns": {"nameservers": ["10.9.0.53"]},
    }
    result = add_result(version, iface(), prev)
    assert schema_problems(version, result) == []
    assert result["dns"] == {"nameservers": ["10.9.0.53"]}  # the first plugin's DNS is kept


def test_dns_from_the_config_or_the_ipam_block() -> None:
    ipam = catalog_pb2.IpamConfig(dns_nameservers=["10.0.0.53"])
    assert list(dns_of({}, ipam).nameservers) == ["10.0.0.53"]
    given = dns_of({"nameservers": ["1.1.1.1"], "search": ["a"], "options": ["ndots:2"], "domain": "d"}, ipam)
    assert (list(given.nameservers), list(given.search), list(given.options), given.domain) == (
        ["1.1.1.1"],
        ["a"],
        ["ndots:2"],
        "d",
    )
