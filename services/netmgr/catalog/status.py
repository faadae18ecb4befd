"""The Network Plumbing WG `k8s.v1.cni.cncf.io/network-status` of pods (NPWG spec v1, section 5; `gateway` and
`device-info` as added by later versions), built from the catalog's pod interfaces.

Per attachment: `name` ("namespace/attachment-definition"), `interface`, `ips` (bare addresses), `mac`, `mtu`,
`default`, `dns` (the ADD result's DNS without its resolver `options`: {nameservers, domain, search}, keys omitted when
empty), `gateway` (the gateways of the attachment's default routes) and `device-info` (only for devices that have
one: PCI, vhost-user, memif; the linux driver's veth interfaces have none). `default` is true when the attachment
holds the pod's default route: the interface the pod's traffic leaves by, which is what the cluster-wide default
network is when multinet is a pod's primary network. Entries of one pod are in attachment order."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from typing import Any

from multinet.v1 import catalog_pb2

_DEFAULTS = {"0.0.0.0/0", "::/0"}


def network_status(iface: catalog_pb2.PodInterface) -> dict[str, Any]:
    namespace = iface.attachment_namespace or iface.pod.namespace or "default"
    entry: dict[str, Any] = {
        "name": f"{namespace}/{iface.attachment}",
        "interface": iface.ifname,
        "ips": [ip.split("/")[0] for ip in iface.ips],
        "mac": iface.mac,
        "default": iface.default_route,
        "dns": _status_dns(iface.dns),
    }
    if iface.mtu:
        entry["mtu"] = iface.mtu
    gateways = default_gateways(iface)
    if gateways:
        entry["gateway"] = gateways
    return entry


def default_gateways(iface: catalog_pb2.PodInterface) -> list[str]:
    families = {ipaddress.ip_network(r.dst).version for r in iface.routes if r.dst in _DEFAULTS}
    return [gw for gw in iface.gateways if gw and ipaddress.ip_address(gw).version in families]


def dns_dict(dns: catalog_pb2.Dns) -> dict[str, Any]:
    """The CNI result's DNS type (also what network-status carries), keys omitted when empty."""
    out: dict[str, Any] = {}
    if dns.nameservers:
        out["nameservers"] = list(dns.nameservers)
    if dns.domain:
        out["domain"] = dns.domain
    if dns.search:
        out["search"] = list(dns.search)
    if dns.options:
        out["options"] = list(dns.options)
    return out


def _status_dns(dns: catalog_pb2.Dns) -> dict[str, Any]:
    """The NPWG spec's `dns` has nameservers, domain and search: the result's resolver options stay out."""
    return {key: value for key, value in dns_dict(dns).items() if key != "options"}


def network_status_json(iface: catalog_pb2.PodInterface) -> str:
    return json.dumps(network_status(iface), separators=(",", ":"))


def pod_key(iface: catalog_pb2.PodInterface) -> tuple[str, str, str]:
    """Which pod an interface belongs to: namespace/name/uid from K8S_* CNI_ARGS, else its container."""
    if iface.pod.name:
        return iface.pod.namespace or "default", iface.pod.name, iface.pod.uid
    return "", iface.container_id, ""


def pods_status(interfaces: Iterable[catalog_pb2.PodInterface]) -> list[dict[str, Any]]:
    """One entry per pod with its network-status list (what a controller would publish as the annotation)."""
    pods: dict[tuple[str, str, str], list[catalog_pb2.PodInterface]] = {}
    for iface in interfaces:
        pods.setdefault(pod_key(iface), []).append(iface)
    out = []
    for (namespace, name, uid), ifaces in sorted(pods.items()):
        ifaces.sort(key=lambda i: (i.revision, i.ifname))
        out.append(
            {
                "namespace": namespace,
                "name": name,
                "uid": uid,
                "containers": sorted({i.container_id for i in ifaces}),
                "nodes": sorted({i.node for i in ifaces}),
                "network-status": [network_status(i) for i in ifaces],
            }
        )
    return out
