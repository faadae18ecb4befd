"""The pod interface an ADD asks the agent for, built from the CNI call, the catalog and the IPAM allocation."""

from __future__ import annotations

from multinet.v1 import catalog_pb2, ipam_pb2

from services.netmgr.cni.config import NetConf
from services.netmgr.cni.env import CniEnv
from services.netmgr.cni.interface import build_interface, owner_of
from services.netmgr.cni.requests import Requests
from services.netmgr.cni.view import Resolved

ENV = CniEnv(
    command="ADD",
    container_id="c1",
    netns="/run/netns/p1",
    ifname="eth1",
    args={"K8S_POD_NAMESPACE": "team-a", "K8S_POD_NAME": "web-0", "K8S_POD_UID": "u-1"},
)
NET = catalog_pb2.Network(name="blue", vni=101, mtu=1450, ranges=["10.1.0.0/24", "fd00:1::/64"])
ALLOCATION = ipam_pb2.AllocateResponse(
    allocations=[ipam_pb2.Allocation(address="10.1.0.5/24"), ipam_pb2.Allocation(address="fd00:1::5/64")]
)


NO_REQUESTS = Requests()


def conf(requests: Requests = NO_REQUESTS) -> NetConf:
    return NetConf(cni_version="1.0.0", name="blue-net", network="blue", raw={}, requests=requests)


def build(requests: Requests = NO_REQUESTS) -> catalog_pb2.PodInterface:
    return build_interface(ENV, conf(requests), Resolved(NET), catalog_pb2.IpamConfig(), ALLOCATION, "node-a")


def test_addresses_become_host_prefixes_with_their_family_gateway() -> None:
    iface = build()
    assert list(iface.ips) == ["10.1.0.5/32", "fd00:1::5/128"]
    assert list(iface.gateways) == ["169.254.1.1", "fe80::1"]
    assert (iface.node, iface.mtu, iface.attachment, iface.pod.name, iface.pod.uid) == (
        "node-a",
        1450,
        "blue-net",
        "web-0",
        "u-1",
    )


def test_no_default_route_unless_asked() -> None:
    iface = build()
    assert not iface.default_route
    assert [r.dst for r in iface.routes] == ["10.1.0.0/24", "fd00:1::/64"]


def test_default_route_only_for_the_families_asked_and_held() -> None:
    iface = build(Requests(default_route=True, default_route_families=frozenset({6})))
    assert iface.default_route
    assert [r.dst for r in iface.routes] == ["10.1.0.0/24", "fd00:1::/64", "::/0"]


def test_requested_mac_is_carried() -> None:
    assert build(Requests(mac="02:00:00:00:00:01")).mac == "02:00:00:00:00:01"


def test_owner_is_keyed_by_container_and_ifname_with_informational_pod_ref() -> None:
    owner = owner_of(ENV)
    assert (owner.container_id, owner.ifname, owner.pod_ref) == ("c1", "eth1", "team-a/web-0")
    assert owner_of(CniEnv(command="ADD", container_id="c2", ifname="eth2")).pod_ref == ""
