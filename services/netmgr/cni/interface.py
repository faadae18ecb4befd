"""The pod interface an ADD asks for: pure construction from the CNI call, the catalog and the IPAM allocation."""

from __future__ import annotations

from multinet.v1 import catalog_pb2, ipam_pb2

from .config import NetConf
from .env import CniEnv
from .result import dns_of
from .routes import GATEWAYS, pod_routes
from .view import Resolved


def build_interface(
    env: CniEnv,
    conf: NetConf,
    resolved: Resolved,
    ipam_config: catalog_pb2.IpamConfig,
    allocation: ipam_pb2.AllocateResponse,
    node: str,
) -> catalog_pb2.PodInterface:
    net, att = resolved.network, resolved.attachment
    ips = [host_prefix(a.address) for a in allocation.allocations]
    families = {family_of(ip) for ip in ips}
    requests = conf.requests
    default_families = (requests.default_route_families or families) & families if requests.default_route else set()
    iface = catalog_pb2.PodInterface(
        network=net.name,
        attachment=att.name if att is not None else conf.name,
        attachment_namespace=att.namespace if att is not None else "",
        container_id=env.container_id,
        ifname=env.ifname,
        netns=env.netns,
        node=node,
        ips=ips,
        mac=requests.mac or env.requested_mac(),
        mtu=net.mtu,
        pod=catalog_pb2.PodRef(namespace=env.pod_namespace, name=env.pod_name, uid=env.pod_uid),
        default_route=bool(default_families),
        gateways=[GATEWAYS[family_of(ip)] for ip in ips],
    )
    iface.dns.CopyFrom(dns_of(conf.dns, ipam_config))
    iface.routes.extend(pod_routes(net, ipam_config, families, default_families))
    return iface


def owner_of(env: CniEnv) -> ipam_pb2.Owner:
    """Whereabouts-style owner: the pod reference is informational, the (container id, ifname) pair is the key."""
    pod_ref = f"{env.pod_namespace}/{env.pod_name}" if env.pod_name else ""
    return ipam_pb2.Owner(container_id=env.container_id, ifname=env.ifname, pod_ref=pod_ref)


def host_prefix(address: str) -> str:
    ip = address.split("/", maxsplit=1)[0]
    return f"{ip}/128" if ":" in ip else f"{ip}/32"


def family_of(ip: str) -> int:
    return 6 if ":" in ip else 4
