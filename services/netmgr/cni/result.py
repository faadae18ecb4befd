"""CNI results printed in the version the configuration asked for (0.3.x/0.4.0 carry ips[].version)."""

from __future__ import annotations

import copy
import ipaddress
import json
from typing import Any

from multinet.v1 import catalog_pb2

from .config import version_tuple
from .errors import CniFailure

SUPPORTED = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]


def add_result(
    version: str, iface: catalog_pb2.PodInterface, dns: dict[str, Any], prev: dict[str, Any] | None
) -> dict[str, Any]:
    """Our interfaces, addresses and routes, appended to `prev` when we are chained after another plugin."""
    result: dict[str, Any] = copy.deepcopy(prev) if prev else {}
    result["cniVersion"] = version
    interfaces = result.setdefault("interfaces", [])
    interfaces.append({"name": iface.host_ifname, "mac": "ee:ee:ee:ee:ee:ee"})
    pod_entry: dict[str, Any] = {"name": iface.ifname, "mac": iface.mac, "sandbox": iface.netns}
    if version_tuple(version) >= (1, 1, 0) and iface.mtu:
        pod_entry["mtu"] = iface.mtu
    interfaces.append(pod_entry)
    pod_index = len(interfaces) - 1
    ips = result.setdefault("ips", [])
    for i, address in enumerate(iface.ips):
        entry: dict[str, Any] = {"address": address, "interface": pod_index}
        if i < len(iface.gateways) and iface.gateways[i]:
            entry["gateway"] = iface.gateways[i]
        if version_tuple(version) < (1, 0, 0):
            entry["version"] = str(ipaddress.ip_interface(address).version)
        ips.append(entry)
    routes = result.setdefault("routes", [])
    for route in iface.routes:
        item = {"dst": route.dst}
        if route.gw:
            item["gw"] = route.gw
        if item not in routes:
            routes.append(item)
    if dns and not result.get("dns"):
        result["dns"] = dns
    result.setdefault("dns", {})
    return result


def version_result(version: str | None) -> dict[str, Any]:
    return {"cniVersion": version or SUPPORTED[-1], "supportedVersions": SUPPORTED}


def error_result(version: str, failure: CniFailure) -> dict[str, Any]:
    out: dict[str, Any] = {"cniVersion": version, "code": int(failure.code), "msg": failure.msg}
    if failure.details:
        out["details"] = failure.details
    return out


def dumps(result: dict[str, Any]) -> bytes:
    return json.dumps(result, separators=(",", ":")).encode()
