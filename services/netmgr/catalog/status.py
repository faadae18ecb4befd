"""The Network Plumbing WG `k8s.v1.cni.cncf.io/network-status` entry of a pod interface."""

from __future__ import annotations

import json
from typing import Any

from multinet.v1 import catalog_pb2


def network_status(iface: catalog_pb2.PodInterface) -> dict[str, Any]:
    namespace, _, name = iface.attachment.rpartition("/")
    entry: dict[str, Any] = {
        "name": f"{namespace or iface.pod.namespace or 'default'}/{name}",
        "interface": iface.ifname,
        "ips": [ip.split("/")[0] for ip in iface.ips],
        "mac": iface.mac,
        "default": iface.default_route,
        "dns": {},
    }
    if iface.mtu:
        entry["mtu"] = iface.mtu
    if iface.gateways:
        entry["gateway"] = list(iface.gateways)
    return entry


def network_status_json(iface: catalog_pb2.PodInterface) -> str:
    return json.dumps(network_status(iface), separators=(",", ":"))
