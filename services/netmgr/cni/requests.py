"""Per-container requests in a CNI configuration, and the fields multinet refuses as unsupported (code 2).

Requests come where the conventions put them (CNI CONVENTIONS.md): `runtimeConfig` (capabilities a runtime
fills: `ips`, `mac`) and `args.cni` (Multus and the Network Plumbing WG spec: `ips`, `mac`, `default-route`).
A static request that cannot be honoured is an error, never silently dropped: the NPWG spec requires the
requested address and MAC to be the ones assigned.

Code 2 ("unsupported field", SPEC.md) is used for fields whose meaning multinet knows and does not implement;
the message names the key and its value, as the spec asks."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from services.common.validate import IB_HWADDR, unicast_mac_problem

from ..netconf import plugins_of
from .errors import CniFailure, Code

# runtimeConfig capabilities other plugins of a chain consume (portmap, bandwidth, ...) or that are purely
# informational: multinet ignores them.
_FOREIGN_CAPABILITIES = frozenset(
    {"portMappings", "bandwidth", "dns", "aliases", "cgroupPath", "io.kubernetes.cri.pod-annotations"}
)
# capabilities that ask the interface plugin for a kind of device multinet does not create (veth / tap only)
_UNSUPPORTED_CAPABILITIES = {
    "deviceID": "multinet creates virtual interfaces; it cannot move a PCI or auxiliary device into the pod",
    "infinibandGUID": "multinet interfaces are Ethernet-like; an InfiniBand GUID cannot be set on them",
}
_DATAPLANE_OPTIONS = frozenset({"network_name"})


@dataclass(frozen=True, slots=True)
class Requests:
    ips: tuple[str, ...] = ()
    mac: str = ""
    default_route: bool = False
    default_route_families: frozenset[int] = frozenset()  # empty with default_route: every family of the pod


def parse_requests(raw: dict[str, Any]) -> Requests:
    check_unsupported(raw)
    families, wanted = _default_route(raw)
    return Requests(ips=_ips(raw), mac=_mac(raw), default_route=wanted, default_route_families=families)


def check_unsupported(raw: dict[str, Any]) -> None:
    if raw.get("ipMasq") is True:
        raise CniFailure(
            Code.UNSUPPORTED_FIELD,
            "ipMasq: true is not supported",
            "multinet networks are isolated routing domains and never masquerade; remove ipMasq or set it to false",
        )
    runtime = raw.get("runtimeConfig")
    if isinstance(runtime, dict):
        for key, why in _UNSUPPORTED_CAPABILITIES.items():
            if runtime.get(key):
                raise CniFailure(
                    Code.UNSUPPORTED_FIELD,
                    f"runtimeConfig.{key}: {runtime[key]!r} is not supported",
                    f"{why}; remove the {key} capability from this network's configuration",
                )
    for plugin in (raw, *plugins_of(raw)):
        options = plugin.get("dataplane_options")
        if not isinstance(options, dict):
            continue
        for key, value in options.items():
            if key not in _DATAPLANE_OPTIONS:
                raise CniFailure(
                    Code.UNSUPPORTED_FIELD,
                    f"dataplane_options.{key}: {value!r} is not supported",
                    "multinet reads only dataplane_options.network_name (the network this attachment joins)",
                )


def _sources(raw: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """runtimeConfig first (the runtime's capability arguments), then args.cni (Multus / NPWG)."""
    runtime = raw.get("runtimeConfig")
    if isinstance(runtime, dict):
        yield "runtimeConfig", runtime
    args = raw.get("args")
    if isinstance(args, dict) and isinstance(args.get("cni"), dict):
        yield "args.cni", args["cni"]


def _ips(raw: dict[str, Any]) -> tuple[str, ...]:
    found: list[str] = []
    for where, source in _sources(raw):
        ips = source.get("ips")
        if ips is None:
            continue
        if not isinstance(ips, list) or not all(isinstance(ip, str) for ip in ips):
            raise CniFailure(Code.INVALID_CONFIG, f"{where}.ips must be a list of IP addresses, got {ips!r}")
        for ip in ips:
            try:
                found.append(str(ipaddress.ip_interface(ip).ip))
            except ValueError:
                raise CniFailure(
                    Code.INVALID_CONFIG, f"{where}.ips: {ip!r} is not an IP address", "write e.g. 192.168.0.10"
                ) from None
        if found:
            break  # runtimeConfig wins over args.cni
    return tuple(dict.fromkeys(found))


def _mac(raw: dict[str, Any]) -> str:
    for where, source in _sources(raw):
        mac = source.get("mac")
        if mac is None:
            continue
        if isinstance(mac, str) and IB_HWADDR.match(mac):
            raise CniFailure(
                Code.UNSUPPORTED_FIELD,
                f"{where}.mac: {mac!r} is not supported",
                "an IP-over-InfiniBand hardware address needs an InfiniBand device; multinet interfaces are "
                "Ethernet-like (aa:bb:cc:dd:ee:ff)",
            )
        problem = unicast_mac_problem(mac) if isinstance(mac, str) else "is not a MAC address (aa:bb:cc:dd:ee:ff)"
        if problem:
            raise CniFailure(Code.INVALID_CONFIG, f"{where}.mac {mac!r} {problem}", "use a unicast MAC such as 02:...")
        return str(mac).lower()
    return ""


def _default_route(raw: dict[str, Any]) -> tuple[frozenset[int], bool]:
    """`default_route: true` (multinet) or NPWG `default-route: [gateway, ...]` (in the config, runtimeConfig or
    args.cni). The gateways' families choose which families get a default route; the route itself always goes
    through the port's link-local gateway, since the node routes for the pod (see routes.py)."""
    where_values = [("", raw)] + [(f"{where}.", source) for where, source in _sources(raw)]
    families: set[int] = set()
    wanted = every_family = False
    for where, source in where_values:
        for key in ("default_route", "default-route"):
            if key not in source:
                continue
            value = source[key]
            if isinstance(value, bool):
                wanted = wanted or value
                every_family = every_family or value
                continue
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise CniFailure(
                    Code.INVALID_CONFIG,
                    f"{where}{key} must be true/false or a list of gateway addresses, got {value!r}",
                )
            seen: set[int] = set()
            for gateway in value:
                try:
                    version = ipaddress.ip_address(gateway).version
                except ValueError:
                    raise CniFailure(Code.INVALID_CONFIG, f"{where}{key}: {gateway!r} is not an IP address") from None
                if version in seen:
                    raise CniFailure(
                        Code.INVALID_CONFIG, f"{where}{key}: more than one IPv{version} gateway in {value!r}"
                    )
                seen.add(version)
            if value:
                wanted = True
                families |= seen
    return (frozenset() if every_family else frozenset(families)), wanted
