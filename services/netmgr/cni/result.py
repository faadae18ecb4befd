"""CNI results printed in the version the configuration asked for, field by field as SPEC.md defines them:

- 0.3.0, 0.3.1, 0.4.0: `ips[].version` ("4"/"6") is required; interfaces have name, mac, sandbox.
- 1.0.0: `ips[].version` is gone; otherwise as 0.4.0.
- 1.1.0: interfaces may also carry `mtu` (and socketPath/pciID, which veth interfaces do not have).
Routes carry dst and gw in every version (1.1.0's mtu/advmss/priority/table/scope are not used: pod routes live in
the main table with default attributes). `dns` is {nameservers, domain, search, options}, omitted keys when empty.

Chained after another plugin (`prevResult`), our interfaces, addresses and routes are appended to its result, with
`interface` indexes pointing into the combined list, and its addresses normalised to the requested version."""

from __future__ import annotations

import copy
import ipaddress
import json
from typing import Any

from multinet.v1 import catalog_pb2

from ..catalog.status import dns_dict
from .config import SUPPORTED_VERSIONS, version_tuple
from .errors import CniFailure


def dns_of(conf_dns: dict[str, Any], ipam: catalog_pb2.IpamConfig) -> catalog_pb2.Dns:
    """The config's well-known `dns` block, else the IPAM block's nameservers."""
    dns = catalog_pb2.Dns()
    if conf_dns:
        dns.nameservers.extend(str(n) for n in _strings(conf_dns.get("nameservers")))
        if isinstance(conf_dns.get("domain"), str):
            dns.domain = conf_dns["domain"]
        dns.search.extend(_strings(conf_dns.get("search")))
        dns.options.extend(_strings(conf_dns.get("options")))
    if not dns.nameservers and ipam.dns_nameservers:
        dns.nameservers.extend(ipam.dns_nameservers)
    return dns


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def add_result(version: str, iface: catalog_pb2.PodInterface, prev: dict[str, Any] | None) -> dict[str, Any]:
    """Our interfaces, addresses and routes, appended to `prev` when we are chained after another plugin."""
    legacy = version_tuple(version) < (1, 0, 0)
    result: dict[str, Any] = copy.deepcopy(prev) if prev else {}
    result["cniVersion"] = version
    interfaces = result.setdefault("interfaces", [])
    interfaces.append({"name": iface.host_ifname, "mac": iface.host_mac})
    pod_entry: dict[str, Any] = {"name": iface.ifname, "mac": iface.mac, "sandbox": iface.netns}
    if version_tuple(version) >= (1, 1, 0) and iface.mtu:
        pod_entry["mtu"] = iface.mtu
    interfaces.append(pod_entry)
    pod_index = len(interfaces) - 1
    ips = result.setdefault("ips", [])
    for entry in ips:  # a previous plugin's addresses, in the requested version's form
        if isinstance(entry, dict) and isinstance(entry.get("address"), str):
            _version_field(entry, legacy)
    for i, address in enumerate(iface.ips):
        item: dict[str, Any] = {"address": address, "interface": pod_index}
        if i < len(iface.gateways) and iface.gateways[i]:
            item["gateway"] = iface.gateways[i]
        _version_field(item, legacy)
        ips.append(item)
    routes = result.setdefault("routes", [])
    for route in iface.routes:
        r = {"dst": route.dst}
        if route.gw:
            r["gw"] = route.gw
        if r not in routes:
            routes.append(r)
    if not result.get("dns"):
        result["dns"] = dns_dict(iface.dns)
    return result


def _version_field(entry: dict[str, Any], legacy: bool) -> None:
    if legacy:
        try:
            entry["version"] = str(ipaddress.ip_interface(entry["address"]).version)
        except ValueError:
            return
    else:
        entry.pop("version", None)


def version_result(version: str | None) -> dict[str, Any]:
    return {"cniVersion": version or SUPPORTED_VERSIONS[-1], "supportedVersions": list(SUPPORTED_VERSIONS)}


def error_result(version: str, failure: CniFailure) -> dict[str, Any]:
    out: dict[str, Any] = {"cniVersion": version, "code": int(failure.code), "msg": failure.msg}
    if failure.details:
        out["details"] = failure.details
    return out


def dumps(result: dict[str, Any]) -> bytes:
    return json.dumps(result, separators=(",", ":")).encode()
