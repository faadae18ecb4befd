"""What CNI SPEC.md says a result looks like in each version, as a checker: every key allowed by the version's
result types and no other, `ips[].version` exactly where required, `interface` indexes pointing at a sandbox
interface. Used by the unit tests of the result builder and by the conformance suite on the real executable."""

from __future__ import annotations

import ipaddress
from typing import Any

# SPEC.md's result fields, per version (0.3.0/0.3.1/0.4.0 share types/040; 1.1.0 adds interface and route fields)
_INTERFACE = {"name", "mac", "sandbox"}
_ROUTE = {"dst", "gw"}
SCHEMA = {
    "0.3.0": (_INTERFACE, {"version", "address", "gateway", "interface"}, _ROUTE),
    "0.3.1": (_INTERFACE, {"version", "address", "gateway", "interface"}, _ROUTE),
    "0.4.0": (_INTERFACE, {"version", "address", "gateway", "interface"}, _ROUTE),
    "1.0.0": (_INTERFACE, {"address", "gateway", "interface"}, _ROUTE),
    "1.1.0": (
        _INTERFACE | {"mtu", "socketPath", "pciID"},
        {"address", "gateway", "interface"},
        _ROUTE | {"mtu", "advmss", "priority", "table", "scope"},
    ),
}


def schema_problems(version: str, result: dict[str, Any]) -> list[str]:
    iface_keys, ip_keys, route_keys = SCHEMA[version]
    problems = [f"top-level {k}" for k in result if k not in {"cniVersion", "interfaces", "ips", "routes", "dns"}]
    if result.get("cniVersion") != version:
        problems.append("cniVersion")
    interfaces = result["interfaces"]
    assert isinstance(interfaces, list)
    for i in interfaces:
        problems += [f"interface key {k}" for k in set(i) - iface_keys]
        if "name" not in i:
            problems.append("interface without name")
    ips = result["ips"]
    assert isinstance(ips, list)
    for ip in ips:
        problems += [f"ip key {k}" for k in set(ip) - ip_keys]
        address = ipaddress.ip_interface(ip["address"])
        if "version" in ip_keys and ip.get("version") != str(address.version):
            problems.append(f"ip version of {ip['address']}")
        if not isinstance(ip.get("interface"), int) or not 0 <= ip["interface"] < len(interfaces):
            problems.append("ip interface index")
        elif "sandbox" not in interfaces[ip["interface"]]:
            problems.append("ip points at a host interface")
    routes = result["routes"]
    assert isinstance(routes, list)
    for route in routes:
        problems += [f"route key {k}" for k in set(route) - route_keys]
        ipaddress.ip_network(route["dst"])
    dns = result["dns"]
    assert isinstance(dns, dict)
    problems += [f"dns key {k}" for k in set(dns) - {"nameservers", "domain", "search", "options"}]
    return problems
