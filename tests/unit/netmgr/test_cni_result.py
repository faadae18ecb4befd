"""Results printed in the requested CNI version, chained after a previous plugin's result."""

from __future__ import annotations

from multinet.v1 import catalog_pb2

from services.netmgr.cni.errors import CniFailure, Code
from services.netmgr.cni.result import add_result, error_result, version_result


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
    result = add_result("1.0.0", iface(), {}, None)
    assert result["cniVersion"] == "1.0.0"
    assert result["interfaces"][1] == {"name": "eth1", "mac": "02:00:00:00:00:01", "sandbox": "/var/run/netns/p"}
    assert result["ips"][0] == {"address": "10.1.0.5/32", "interface": 1, "gateway": "169.254.1.1"}
    assert "version" not in result["ips"][0]
    assert result["routes"] == [{"dst": "10.1.0.0/16", "gw": "169.254.1.1"}]


def test_0_3_1_result_carries_ip_versions() -> None:
    result = add_result("0.3.1", iface(), {}, None)
    assert [ip["version"] for ip in result["ips"]] == ["4", "6"]


def test_1_1_result_reports_mtu() -> None:
    assert add_result("1.1.0", iface(), {}, None)["interfaces"][1]["mtu"] == 1350


def test_chained_after_previous_result() -> None:
    prev = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0"}],
        "ips": [{"address": "10.9.0.2/24", "interface": 0}],
    }
    result = add_result("1.0.0", iface(), {}, prev)
    assert [i["name"] for i in result["interfaces"]] == ["eth0", "mnabc", "eth1"]
    assert result["ips"][0]["address"] == "10.9.0.2/24"
    assert result["ips"][1]["interface"] == 2
    assert prev["interfaces"] == [{"name": "eth0"}]  # the input is not modified


def test_error_and_version_results() -> None:
    err = error_result("0.4.0", CniFailure(Code.POOL_EXHAUSTED, "pool exhausted", "blue: 254 of 254"))
    assert err == {"cniVersion": "0.4.0", "code": 102, "msg": "pool exhausted", "details": "blue: 254 of 254"}
    assert version_result(None)["supportedVersions"][-1] == "1.1.0"
