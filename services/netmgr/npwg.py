"""The Network Plumbing WG's pod annotations (Kubernetes Network Custom Resource Definition De-facto Standard):
`k8s.v1.cni.cncf.io/networks` (which attachments a pod asks for) and the shape of
`k8s.v1.cni.cncf.io/network-status` (what it got). Pure: no I/O, no gRPC.

Selection annotation, both forms of section 4.1:
- text: `[namespace/]name[@interface], ...`
- JSON: a list of objects with `name` (required), `namespace`, `interface`, `ips`, `mac`, `default-route`,
  `cni-args`, `portMappings`, `bandwidth`, `infiniband-guid`, `ipam-claim-reference`; keys with a dot are
  implementation extensions (reverse domain notation) and are kept; other keys are reserved by the spec and refused
  (a typo such as "interfce" would otherwise be silently ignored).
Validation: attachment names are DNS-1123 subdomains (units of DNS-1123 labels), namespaces DNS-1123 labels,
interfaces Linux interface names; `ips` at least one IP address (a prefix length is allowed, as Multus' static IPAM
users write it); `mac` a 6-byte Ethernet or 20-byte IP-over-InfiniBand address; `default-route` gateway
addresses, at most one per IP family in the whole annotation. Interfaces not named are `net1`, `net2`, ... by
position (as Multus names them); a name used twice is an error. Every error says which entry and which field.
The spec says an invalid annotation "shall be invalid and ignored"; callers get an AnnotationError and decide."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.common.validate import IB_HWADDR, MAC, ifname_problem

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_KNOWN_KEYS = frozenset(
    {
        "name",
        "namespace",
        "interface",
        "ips",
        "mac",
        "default-route",
        "cni-args",
        "portMappings",
        "bandwidth",
        "infiniband-guid",
        "ipam-claim-reference",
    }
)


class AnnotationError(ValueError):
    """The annotation is invalid; the message names the entry and the field."""


@dataclass(frozen=True, slots=True)
class NetworkSelection:
    """One requested attachment."""

    name: str
    namespace: str
    interface: str  # as requested, or generated (net1, net2, ...)
    interface_requested: bool = False
    ips: tuple[str, ...] = ()
    mac: str = ""
    default_route: tuple[str, ...] = ()  # gateway addresses
    cni_args: Mapping[str, Any] = field(default_factory=dict)
    port_mappings: tuple[Mapping[str, Any], ...] = ()
    bandwidth: Mapping[str, Any] | None = None
    extensions: Mapping[str, Any] = field(default_factory=dict)  # reverse-domain keys

    @property
    def ref(self) -> str:
        """ "namespace/name": the network-status entry's name."""
        return f"{self.namespace}/{self.name}"

    def args_cni(self) -> dict[str, Any]:
        """What a delegating plugin adds to the config's `args.cni` (sections 4.1.2.1.3.2 and 4.1.2.1.4.2)."""
        out: dict[str, Any] = dict(self.cni_args)
        if self.ips:
            out["ips"] = list(self.ips)
        if self.mac:
            out["mac"] = self.mac
        if self.default_route:
            out["default-route"] = list(self.default_route)
        return out

    def runtime_config(self, capabilities: Mapping[str, bool]) -> dict[str, Any]:
        """What a delegating plugin passes in `runtimeConfig` for the capabilities the delegate declares."""
        wanted: dict[str, Any] = {
            "ips": list(self.ips) if self.ips else None,
            "mac": self.mac or None,
            "portMappings": [dict(m) for m in self.port_mappings] if self.port_mappings else None,
            "bandwidth": dict(self.bandwidth) if self.bandwidth else None,
        }
        return {k: v for k, v in wanted.items() if v is not None and capabilities.get(k)}


def parse_networks(value: str, pod_namespace: str = "default", taken: Collection[str] = ()) -> list[NetworkSelection]:
    """The attachments a `k8s.v1.cni.cncf.io/networks` value asks for, in order. `taken`: interface names already
    in use in the pod (the cluster-wide default network's, typically eth0)."""
    _check_label("pod namespace", pod_namespace)
    text = value.strip()
    if not text:
        return []
    if text[0] in "[{":
        raw = _parse_json(text)
        selections = [_from_json(i, entry, pod_namespace) for i, entry in enumerate(raw)]
    else:
        selections = [_from_text(i, item, pod_namespace) for i, item in enumerate(text.split(","))]
    _check_unique_interfaces(selections, taken)
    _check_default_routes(selections)
    return selections


# ------------------------------------------------------------------------------------------------------ text form
def _from_text(index: int, item: str, pod_namespace: str) -> NetworkSelection:
    where = f"entry {index} ({item.strip()!r})"
    entry = item.strip()
    if not entry:
        raise AnnotationError(f"entry {index} is empty: write [namespace/]name[@interface], comma-separated")
    namespace, slash, rest = entry.partition("/")
    if not slash:
        namespace, rest = "", entry
    elif "/" in rest:
        raise AnnotationError(f"{where}: more than one '/' (the form is [namespace/]name[@interface])")
    name, at, interface = rest.partition("@")
    if at and "@" in interface:
        raise AnnotationError(f"{where}: more than one '@' (the form is [namespace/]name[@interface])")
    namespace, name, interface = namespace.strip(), name.strip(), interface.strip()
    if slash:
        _check_label(f"{where}: namespace", namespace)
    _check_subdomain(f"{where}: name", name)
    if at:
        _check_ifname(f"{where}: interface", interface)
    return NetworkSelection(
        name=name,
        namespace=namespace or pod_namespace,
        interface=interface or f"net{index + 1}",
        interface_requested=bool(interface),
    )


# ------------------------------------------------------------------------------------------------------ JSON form
def _parse_json(text: str) -> list[Any]:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(raw, list):
        raise AnnotationError('the JSON form must be a list of objects, e.g. [{"name": "net-a"}]')
    return raw


def _from_json(index: int, entry: object, pod_namespace: str) -> NetworkSelection:
    where = f"entry {index}"
    if not isinstance(entry, dict):
        raise AnnotationError(f'{where}: must be an object with at least a "name"')
    for key in entry:
        if "." not in key and key not in _KNOWN_KEYS:
            raise AnnotationError(
                f"{where}: unknown key {key!r} (known: {', '.join(sorted(_KNOWN_KEYS))}; "
                "implementation-specific keys use reverse domain notation, e.g. org.example.key)"
            )
    name = _string(f"{where}.name", entry.get("name"), required=True)
    _check_subdomain(f"{where}.name", name)
    namespace = _string(f"{where}.namespace", entry.get("namespace"))
    if namespace:
        _check_label(f"{where}.namespace", namespace)
    interface = _string(f"{where}.interface", entry.get("interface"))
    if interface:
        _check_ifname(f"{where}.interface", interface)
    return NetworkSelection(
        name=name,
        namespace=namespace or pod_namespace,
        interface=interface or f"net{index + 1}",
        interface_requested=bool(interface),
        ips=_ips(f"{where}.ips", entry.get("ips")),
        mac=_mac(f"{where}.mac", entry.get("mac")),
        default_route=_gateways(f"{where}.default-route", entry.get("default-route")),
        cni_args=_object(f"{where}.cni-args", entry.get("cni-args")) or {},
        port_mappings=_port_mappings(f"{where}.portMappings", entry.get("portMappings")),
        bandwidth=_object(f"{where}.bandwidth", entry.get("bandwidth")),
        extensions={k: v for k, v in entry.items() if "." in k},
    )


def _string(where: str, value: object, required: bool = False) -> str:
    if value is None:
        if required:
            raise AnnotationError(f"{where} is required")
        return ""
    if not isinstance(value, str):
        raise AnnotationError(f"{where} must be a string, got {value!r}")
    if required and not value:
        raise AnnotationError(f"{where} is required")
    return value


def _ips(where: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise AnnotationError(f"{where} must be a list of at least one IP address, got {value!r}")
    out = []
    for ip in value:
        if not isinstance(ip, str):
            raise AnnotationError(f"{where}: {ip!r} is not an IP address")
        try:
            ipaddress.ip_interface(ip)
        except ValueError:
            raise AnnotationError(f"{where}: {ip!r} is not an IP address (e.g. 10.2.2.42 or 2001:db8::5)") from None
        out.append(ip)
    return tuple(out)


def _mac(where: str, value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or not (MAC.match(value) or IB_HWADDR.match(value)):
        raise AnnotationError(
            f"{where}: {value!r} is not a 6-byte Ethernet (02:23:45:67:89:01) or 20-byte InfiniBand address"
        )
    return value.lower()


def _gateways(where: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise AnnotationError(f"{where} must be a list of gateway addresses, got {value!r}")
    seen: set[int] = set()
    out = []
    for gw in value:
        try:
            version = ipaddress.ip_address(gw).version if isinstance(gw, str) else 0
        except ValueError:
            version = 0
        if not version:
            raise AnnotationError(f"{where}: {gw!r} is not an IP address")
        if version in seen:
            raise AnnotationError(f"{where}: more than one IPv{version} gateway")
        seen.add(version)
        out.append(gw)
    return tuple(out)


def _object(where: str, value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise AnnotationError(f"{where} must be an object, got {value!r}")
    return value


def _port_mappings(where: str, value: object) -> tuple[Mapping[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
        raise AnnotationError(f"{where} must be a list of objects (hostPort, containerPort, protocol)")
    return tuple(value)


# ------------------------------------------------------------------------------------------------------ checks
def _check_label(where: str, value: str) -> None:
    if len(value) > 63 or not _LABEL.match(value):
        raise AnnotationError(
            f"{where} {value!r} is not a DNS-1123 label (lower case alphanumerics and '-', "
            "starting and ending with an alphanumeric, at most 63 characters)"
        )


def _check_subdomain(where: str, value: str) -> None:
    if not value:
        raise AnnotationError(f"{where} is empty")
    if len(value) > 253 or not all(_LABEL.match(unit) and len(unit) <= 63 for unit in value.split(".")):
        raise AnnotationError(
            f"{where} {value!r} is not made of DNS-1123 labels (lower case alphanumerics and '-', "
            "each starting and ending with an alphanumeric, separated by '.')"
        )


def _check_ifname(where: str, value: str) -> None:
    problem = ifname_problem(value)
    if problem:
        raise AnnotationError(f"{where} {value!r} is not a Linux interface name: it {problem}")


def _check_unique_interfaces(selections: list[NetworkSelection], taken: Collection[str]) -> None:
    owner: dict[str, int] = {}
    for i, sel in enumerate(selections):
        if sel.interface in taken:
            raise AnnotationError(f"entry {i}: interface {sel.interface!r} is already used in the pod")
        if sel.interface in owner:
            raise AnnotationError(
                f"entry {i}: interface {sel.interface!r} is also the interface of entry {owner[sel.interface]} "
                "(each attachment needs its own interface name)"
            )
        owner[sel.interface] = i


def _check_default_routes(selections: list[NetworkSelection]) -> None:
    owner: dict[int, int] = {}
    for i, sel in enumerate(selections):
        for gw in sel.default_route:
            version = ipaddress.ip_address(gw).version
            if version in owner:
                raise AnnotationError(
                    f"entry {i}: default-route for IPv{version} is also requested by entry {owner[version]} "
                    "(at most one attachment may carry the default route of each IP family)"
                )
            owner[version] = i


# ------------------------------------------------------------------------------------------------------ status
def status_problems(entries: object) -> list[str]:
    """What makes a `k8s.v1.cni.cncf.io/network-status` value not conform to the spec's section 5.3 (empty when it
    conforms): a list of maps; `name` (string) and `default` (boolean) required; `interface`, `ips`, `mac`, `mtu`,
    `dns`, `gateway`, `device-info` typed as the spec says; `mac` only with `interface`; at most one default."""
    if not isinstance(entries, list):
        return ["network-status must be a list"]
    problems: list[str] = []
    defaults = 0
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(f"[{i}] is not a map")
            continue
        problems += [f"[{i}].{p}" for p in _entry_problems(entry)]
        defaults += entry.get("default") is True
    if defaults > 1:
        problems.append(f"{defaults} entries have default: true (at most one may)")
    return problems


def _entry_problems(entry: dict[str, Any]) -> list[str]:
    found: list[str] = []
    if not isinstance(entry.get("name"), str) or not entry["name"]:
        found.append("name is required (a string)")
    if not isinstance(entry.get("default"), bool):
        found.append("default is required (a boolean)")
    if "interface" in entry and not isinstance(entry["interface"], str):
        found.append("interface must be a string")
    if "mac" in entry and "interface" not in entry:
        found.append("mac needs interface")
    for key in ("ips", "gateway"):
        for ip in entry.get(key, []) if isinstance(entry.get(key, []), list) else [None]:
            try:
                ipaddress.ip_interface(ip)  # type: ignore[arg-type]
            except (ValueError, TypeError):
                found.append(f"{key}: {ip!r} is not an IP address")
    if "mtu" in entry and (not isinstance(entry["mtu"], int) or entry["mtu"] <= 0):
        found.append("mtu must be a positive integer")
    dns = entry.get("dns", {})
    if not isinstance(dns, dict) or not set(dns) <= {"nameservers", "domain", "search"}:
        found.append("dns must be a map of nameservers, domain, search")
    info = entry.get("device-info")
    if info is not None and (not isinstance(info, dict) or "type" not in info or "version" not in info):
        found.append("device-info must be a map with type and version")
    return found
