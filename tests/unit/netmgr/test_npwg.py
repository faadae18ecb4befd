"""The Network Plumbing WG annotations: `k8s.v1.cni.cncf.io/networks` in both forms, with the spec's own examples
(section 4.1), its validation rules, and the shape of `k8s.v1.cni.cncf.io/network-status` (section 5)."""

from __future__ import annotations

import json

import pytest
from multinet.v1 import catalog_pb2

from services.netmgr.catalog.status import network_status, pods_status
from services.netmgr.npwg import AnnotationError, parse_networks, status_problems


def refused(value: str, *fragments: str, **kw: object) -> None:
    with pytest.raises(AnnotationError) as info:
        parse_networks(value, **kw)  # type: ignore[arg-type]
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


# ------------------------------------------------------------------------------------------------ spec examples
def test_spec_4_1_1_comma_delimited() -> None:
    nets = parse_networks("net-a,net-b,other-ns/net-c", "my-namespace")
    assert [(n.namespace, n.name, n.interface) for n in nets] == [
        ("my-namespace", "net-a", "net1"),
        ("my-namespace", "net-b", "net2"),
        ("other-ns", "net-c", "net3"),
    ]
    assert [n.ref for n in nets] == ["my-namespace/net-a", "my-namespace/net-b", "other-ns/net-c"]


def test_spec_4_1_2_json_list() -> None:
    value = """[
        {"name":"net-a"},
        {"name":"net-b", "ips": ["1.2.3.4"], "mac": "aa:bb:cc:dd:ee:ff"},
        {"name":"net-c", "namespace":"other-ns"}
    ]"""
    a, b, c = parse_networks(value, "my-namespace")
    assert (a.ref, a.interface, a.ips, a.mac) == ("my-namespace/net-a", "net1", (), "")
    assert (b.ref, b.ips, b.mac) == ("my-namespace/net-b", ("1.2.3.4",), "aa:bb:cc:dd:ee:ff")
    assert c.ref == "other-ns/net-c"


def test_spec_ips_example_becomes_args_cni() -> None:
    (sel,) = parse_networks('[{"name":"net-b","ips": ["10.2.2.42", "2001:db8::5"]}]')
    assert sel.args_cni() == {"ips": ["10.2.2.42", "2001:db8::5"]}


def test_spec_mac_example_becomes_args_cni_and_runtime_config() -> None:
    (sel,) = parse_networks('[{"name":"net-b","mac": "02:23:45:67:89:01"}]')
    assert sel.args_cni() == {"mac": "02:23:45:67:89:01"}
    assert sel.runtime_config({"mac": True, "ips": True}) == {"mac": "02:23:45:67:89:01"}
    assert sel.runtime_config({}) == {}


def test_spec_4_2_same_network_twice_gets_two_interfaces() -> None:
    nets = parse_networks("net-a,net-a")
    assert [(n.name, n.interface) for n in nets] == [("net-a", "net1"), ("net-a", "net2")]


def test_text_form_with_interfaces_and_spaces() -> None:
    nets = parse_networks(" network-blue-conf@eth1 , ns2/network-red-conf@eth2")
    assert [(n.ref, n.interface, n.interface_requested) for n in nets] == [
        ("default/network-blue-conf", "eth1", True),
        ("ns2/network-red-conf", "eth2", True),
    ]


def test_json_form_every_key() -> None:
    value = json.dumps(
        [
            {
                "name": "network-blue-conf",
                "interface": "eth1",
                "ips": ["192.168.0.10/16"],
                "mac": "02:00:00:00:00:0a",
                "default-route": ["169.254.1.1"],
                "cni-args": {"foo": "bar"},
                "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
                "bandwidth": {"ingressRate": 1000},
                "org.example.color": "blue",
            }
        ]
    )
    (sel,) = parse_networks(value, "ns1")
    assert sel.default_route == ("169.254.1.1",)
    assert sel.extensions == {"org.example.color": "blue"}
    assert sel.args_cni() == {
        "foo": "bar",
        "ips": ["192.168.0.10/16"],
        "mac": "02:00:00:00:00:0a",
        "default-route": ["169.254.1.1"],
    }
    assert set(sel.runtime_config({"ips": True, "mac": True, "portMappings": True, "bandwidth": True})) == {
        "ips",
        "mac",
        "portMappings",
        "bandwidth",
    }


def test_empty_annotation_selects_nothing() -> None:
    assert parse_networks("") == []
    assert parse_networks("[]") == []


# ------------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("Net-A", "DNS-1123"),
        ("net_a", "DNS-1123"),
        ("-net", "DNS-1123"),
        ("net-a.", "DNS-1123"),
        ("NS/net-a", "namespace"),
        ("a/b/c", "more than one '/'"),
        ("net-a@eth1@eth2", "more than one '@'"),
        ("net-a@", "interface"),
        ("net-a@this-name-is-too-long", "Linux interface name"),
        ("net-a@eth 1", "Linux interface name"),
        ("net-a,,net-b", "entry 1 is empty"),
        ("net-a,", "entry 1 is empty"),
    ],
)
def test_text_form_refusals(value: str, fragment: str) -> None:
    refused(value, fragment)


def test_dotted_attachment_names_are_units_of_labels() -> None:
    assert parse_networks("net.a.example")[0].name == "net.a.example"


@pytest.mark.parametrize(
    ("entries", "fragment"),
    [
        ({"namespace": "x"}, "entry 0.name is required"),
        ({"name": ""}, "entry 0.name is required"),
        ({"name": 7}, "must be a string"),
        ({"name": "Net"}, "DNS-1123"),
        ({"name": "n", "namespace": "Bad_NS"}, "entry 0.namespace"),
        ({"name": "n", "interface": "a/b"}, "entry 0.interface"),
        ({"name": "n", "ips": []}, "at least one IP address"),
        ({"name": "n", "ips": "10.0.0.1"}, "at least one IP address"),
        ({"name": "n", "ips": ["10.0.0.300"]}, "not an IP address"),
        ({"name": "n", "mac": "aa:bb:cc"}, "entry 0.mac"),
        ({"name": "n", "mac": 5}, "entry 0.mac"),
        ({"name": "n", "default-route": "10.0.0.1"}, "list of gateway addresses"),
        ({"name": "n", "default-route": ["gw"]}, "not an IP address"),
        ({"name": "n", "default-route": ["10.0.0.1", "10.0.0.2"]}, "more than one IPv4 gateway"),
        ({"name": "n", "cni-args": [1]}, "must be an object"),
        ({"name": "n", "portMappings": {"hostPort": 1}}, "list of objects"),
        ({"name": "n", "interfce": "eth1"}, "unknown key 'interfce'"),
    ],
)
def test_json_form_refusals(entries: dict[str, object], fragment: str) -> None:
    refused(json.dumps([entries]), fragment)


def test_json_must_be_a_list_of_objects() -> None:
    refused('{"name": "n"}', "must be a list")
    refused('["n"]', "must be an object")
    refused("[{", "not valid JSON")


def test_infiniband_hardware_address_is_valid() -> None:
    mac = "80:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22"
    assert parse_networks(json.dumps([{"name": "ib", "mac": mac}]))[0].mac == mac


def test_duplicate_interface_names_are_refused() -> None:
    refused("net-a@eth1,net-b@eth1", "entry 1: interface 'eth1' is also the interface of entry 0")
    refused('[{"name": "a"}, {"name": "b", "interface": "net1"}]', "interface 'net1'")
    refused("net-a@eth0", "already used in the pod", taken=("eth0",))


def test_at_most_one_default_route_per_family() -> None:
    ok = parse_networks('[{"name": "a", "default-route": ["10.0.0.1"]}, {"name": "b", "default-route": ["fd00::1"]}]')
    assert [s.default_route for s in ok] == [("10.0.0.1",), ("fd00::1",)]
    refused(
        '[{"name": "a", "default-route": ["10.0.0.1"]}, {"name": "b", "default-route": ["10.1.0.1", "fd00::1"]}]',
        "entry 1: default-route for IPv4 is also requested by entry 0",
    )


def test_bad_pod_namespace() -> None:
    refused("net-a", "pod namespace", pod_namespace="Default")


# ------------------------------------------------------------------------------------------------ network-status
def iface(**kw: object) -> catalog_pb2.PodInterface:
    fields: dict[str, object] = {
        "network": "blue",
        "attachment": "network-blue-conf",
        "attachment_namespace": "default",
        "container_id": "c1",
        "ifname": "net1",
        "ips": ["192.168.0.5/32", "fd00::5/128"],
        "gateways": ["169.254.1.1", "fe80::1"],
        "mac": "02:00:00:00:00:05",
        "mtu": 1450,
        "pod": catalog_pb2.PodRef(namespace="ns1", name="web-0", uid="u1"),
        "routes": [catalog_pb2.Route(dst="192.168.0.0/16", gw="169.254.1.1")],
        "dns": catalog_pb2.Dns(nameservers=["192.168.0.53"], search=["svc.local"]),
        "revision": 7,
    } | kw
    return catalog_pb2.PodInterface(**fields)  # type: ignore[arg-type]


def test_network_status_entry_has_the_spec_keys() -> None:
    entry = network_status(iface())
    assert entry == {
        "name": "default/network-blue-conf",
        "interface": "net1",
        "ips": ["192.168.0.5", "fd00::5"],
        "mac": "02:00:00:00:00:05",
        "mtu": 1450,
        "default": False,
        "dns": {"nameservers": ["192.168.0.53"], "search": ["svc.local"]},
    }
    assert status_problems([entry]) == []


def test_network_status_gateway_is_the_default_routes_gateway() -> None:
    routes = [catalog_pb2.Route(dst="192.168.0.0/16", gw="169.254.1.1"), catalog_pb2.Route(dst="0.0.0.0/0")]
    entry = network_status(iface(default_route=True, routes=routes))
    assert entry["default"] is True
    assert entry["gateway"] == ["169.254.1.1"]


def test_network_status_name_falls_back_to_the_pod_namespace() -> None:
    entry = network_status(iface(attachment="network-red", attachment_namespace=""))
    assert entry["name"] == "ns1/network-red"


def test_pods_status_groups_interfaces_per_pod_in_attachment_order() -> None:
    pods = pods_status(
        [
            iface(ifname="net2", network="red", attachment="network-red-conf", revision=9),
            iface(),
            iface(container_id="c2", pod=catalog_pb2.PodRef(namespace="ns1", name="web-1", uid="u2")),
            iface(container_id="lonely", pod=catalog_pb2.PodRef()),
        ]
    )
    assert [(p["namespace"], p["name"]) for p in pods] == [("", "lonely"), ("ns1", "web-0"), ("ns1", "web-1")]
    web0 = pods[1]
    assert [s["interface"] for s in web0["network-status"]] == ["net1", "net2"]
    assert web0["uid"] == "u1" and web0["containers"] == ["c1"]


@pytest.mark.parametrize(
    ("entries", "fragment"),
    [
        ({"interface": "eth1"}, "name is required"),
        ({"name": "x"}, "default is required"),
        ({"name": "x", "default": False, "mac": "02:00:00:00:00:01"}, "mac needs interface"),
        ({"name": "x", "default": False, "ips": ["nope"]}, "not an IP address"),
        ({"name": "x", "default": False, "dns": {"servers": []}}, "dns must be"),
        ({"name": "x", "default": False, "device-info": {"type": "pci"}}, "device-info"),
    ],
)
def test_status_problems(entries: dict[str, object], fragment: str) -> None:
    assert any(fragment in p for p in status_problems([entries])), status_problems([entries])


def test_status_at_most_one_default() -> None:
    two = [{"name": "a", "default": True}, {"name": "b", "default": True}]
    assert status_problems(two) == ["2 entries have default: true (at most one may)"]


def test_network_status_dns_is_the_add_results_dns_without_resolver_options() -> None:
    dns = catalog_pb2.Dns(nameservers=["192.168.0.53"], domain="blue.local", options=["ndots:2"])
    entry = network_status(iface(dns=dns))
    assert entry["dns"] == {"nameservers": ["192.168.0.53"], "domain": "blue.local"}
    assert status_problems([entry]) == []
