"""whereabouts-compatible IPAM configuration: the `ipam` block of a CNI config → typed `IpamConfig`.

Same meaning as whereabouts for `range` (CIDR or `A-B/nn`), `range_start`, `range_end`, `exclude` (CIDRs or bare IPs),
`ipRanges` (one address per entry), `gateway`, `routes`, `dns`, `network_name`, `enable_overlapping_ranges`.
Differences, on purpose:
- every invalid value is refused with a `FieldError` naming the field (whereabouts ignores many silently);
- unknown keys are refused (a typo such as `range_stat` would otherwise allocate from the wrong range);
- in multinet each network IS the address domain, so `network_name` may only name the attachment's network;
- `enable_overlapping_ranges: false` additionally forbids an address reserved in any other network.
whereabouts' own deployment knobs (kubeconfig, etcd_host, log_file, ...) are accepted and have no effect: multinet's
IPAM service replaces that machinery.

`validate_ipam_config` checks an `IpamConfig` received over gRPC (the typed form, field paths like
`config.ranges[0].range_start`)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from multinet.v1 import catalog_pb2

from services.common.validate import FieldError, IPAddress, IPNetwork

_RANGE_KEYS = frozenset({"range", "range_start", "range_end", "exclude"})
_MEANINGFUL_KEYS = _RANGE_KEYS | {"ipRanges", "gateway", "routes", "dns", "network_name", "enable_overlapping_ranges"}
# whereabouts' deployment and tuning knobs: they configure its own storage, logging and leader election.
_DEPLOYMENT_KEYS = frozenset(
    {
        "type", "name", "kubernetes", "datastore", "etcd_host", "etcd_username", "etcd_password", "etcd_key_file",
        "etcd_cert_file", "etcd_ca_cert_file", "log_file", "log_level", "configuration_path", "sleep_for_race",
        "reconciler_cron_expression", "leader_lease_duration", "leader_renew_deadline", "leader_retry_period",
        "node_slice_size", "exclude_gateway", "optimistic_ipam",
    }
)  # fmt: skip


def parse_ipam_block(ipam: dict[str, Any], network: str, default_ranges: Sequence[str]) -> catalog_pb2.IpamConfig:
    """The effective IPAM of an attachment on `network`: its `ipam` block, or the network's ranges by default."""
    if not isinstance(ipam, dict):
        raise FieldError("ipam", "must be an object")
    for key in ipam:
        if key not in _MEANINGFUL_KEYS and key not in _DEPLOYMENT_KEYS:
            raise FieldError(
                f"ipam.{key}", f"is not a whereabouts field (meaningful: {', '.join(sorted(_MEANINGFUL_KEYS))})"
            )
    _check_network_name(ipam.get("network_name"), network)
    overlapping = ipam.get("enable_overlapping_ranges", True)
    if not isinstance(overlapping, bool):
        raise FieldError("ipam.enable_overlapping_ranges", f"must be true or false, got {overlapping!r}")

    ranges = _explicit_ranges(ipam)
    if not ranges:
        ranges = _default_ranges(ipam, network, default_ranges)
    config = catalog_pb2.IpamConfig(ranges=ranges, overlapping_ranges=overlapping)
    if "gateway" in ipam:
        _assign_gateway(ipam["gateway"], config.ranges)
    config.routes.extend(_routes(ipam.get("routes", [])))
    config.dns_nameservers.extend(_nameservers(ipam.get("dns", {})))
    return config


def _check_network_name(value: object, network: str) -> None:
    if value is None or value == network:
        return
    raise FieldError(
        "ipam.network_name",
        f"is {value!r} but this attachment belongs to network {network!r}: in multinet each network is its own "
        f"address domain, so network_name can only name it (remove it, or set it to {network!r})",
    )


def _explicit_ranges(ipam: dict[str, Any]) -> list[catalog_pb2.IpRange]:
    ranges = []
    if "range" in ipam:
        ranges.append(_parse_range(ipam, "ipam"))
    else:
        for key in ("range_start", "range_end"):
            if key in ipam:
                raise FieldError(f"ipam.{key}", "needs ipam.range (the CIDR it belongs to)")
    entries = ipam.get("ipRanges", [])
    if not isinstance(entries, list):
        raise FieldError("ipam.ipRanges", "must be a list of objects with a 'range'")
    for i, entry in enumerate(entries):
        path = f"ipam.ipRanges[{i}]"
        if not isinstance(entry, dict):
            raise FieldError(path, "must be an object with a 'range'")
        for key in entry:
            if key not in _RANGE_KEYS:
                raise FieldError(
                    f"{path}.{key}", f"is not an ipRanges field (allowed: {', '.join(sorted(_RANGE_KEYS))})"
                )
        if "range" not in entry:
            raise FieldError(f"{path}.range", "is required")
        ranges.append(_parse_range(entry, path))
    if ranges and "range" not in ipam and "exclude" in ipam:
        raise FieldError(
            "ipam.exclude", "applies to ipam.range, which is not set: put exclusions in each ipRanges entry"
        )
    return ranges


def _default_ranges(ipam: dict[str, Any], network: str, default_ranges: Sequence[str]) -> list[catalog_pb2.IpRange]:
    if not default_ranges:
        raise FieldError("ipam.range", f"is required: network {network!r} has no range to default to")
    nets = [_cidr_loose(f"network {network}.ranges[{i}]", cidr) for i, cidr in enumerate(default_ranges)]
    excludes = _excludes(ipam.get("exclude", []), "ipam.exclude", nets)
    return [catalog_pb2.IpRange(cidr=str(net), exclude=[str(e) for e in excludes if _overlaps(e, net)]) for net in nets]


def _parse_range(entry: dict[str, Any], path: str) -> catalog_pb2.IpRange:
    text = _string(f"{path}.range", entry["range"])
    start: IPAddress | None = None
    end: IPAddress | None = None
    keys = ("range_start", "range_end")
    if "-" in text:
        # whereabouts' "A-B/nn": A is range_start, B range_end, nn the prefix of B's network.
        for key in ("range_start", "range_end"):
            if key in entry:
                raise FieldError(f"{path}.{key}", f"cannot be combined with a range in A-B/nn form ({text!r})")
        first, _, rest = text.partition("-")
        if "/" not in rest:
            raise FieldError(
                f"{path}.range", f"{text!r}: the A-B form needs a prefix length, e.g. 10.0.0.10-10.0.0.20/24"
            )
        start = _address(f"{path}.range", first.strip())
        net = _cidr_loose(f"{path}.range", rest.strip())
        end = _address(f"{path}.range", rest.strip().partition("/")[0])
        keys = ("range", "range")
    else:
        net = _cidr_loose(f"{path}.range", text)
        if "range_start" in entry:
            start = _address(f"{path}.range_start", _string(f"{path}.range_start", entry["range_start"]))
        if "range_end" in entry:
            end = _address(f"{path}.range_end", _string(f"{path}.range_end", entry["range_end"]))
    check_bounds(path, net, start, end, *keys)
    excludes = _excludes(entry.get("exclude", []), f"{path}.exclude", [net])
    return catalog_pb2.IpRange(
        cidr=str(net),
        range_start=str(start) if start is not None else "",
        range_end=str(end) if end is not None else "",
        exclude=[str(e) for e in excludes],
    )


def check_bounds(
    path: str, net: IPNetwork, start: IPAddress | None, end: IPAddress | None, start_key: str, end_key: str
) -> None:
    """range_start and range_end must lie inside the range's CIDR and be in order."""
    for key, value in ((start_key, start), (end_key, end)):
        if value is not None and (value.version != net.version or value not in net):
            raise FieldError(f"{path}.{key}", f"{value} is not inside {net}")
    if start is not None and end is not None and int(start) > int(end):
        raise FieldError(f"{path}.{end_key}", f"{end} is before {start_key} {start}")


def _excludes(value: object, path: str, nets: Sequence[IPNetwork]) -> list[IPNetwork]:
    if not isinstance(value, list):
        raise FieldError(path, "must be a list of CIDRs or addresses")
    result = []
    for i, item in enumerate(value):
        field = f"{path}[{i}]"
        text = _string(field, item)
        excluded = _cidr_loose(field, text) if "/" in text else ipaddress.ip_network(_address(field, text))
        if not any(_overlaps(excluded, net) for net in nets):
            raise FieldError(field, f"{text} is outside {', '.join(map(str, nets))}, so it excludes nothing")
        result.append(excluded)
    return result


def _assign_gateway(value: object, ranges: Sequence[catalog_pb2.IpRange]) -> None:
    """The gateway goes to the ranges whose CIDR holds it, else (a pure-L3 next hop such as 169.254.1.1) to every
    range of its family."""
    gateway = _address("ipam.gateway", _string("ipam.gateway", value))
    same_family = [r for r in ranges if ipaddress.ip_network(r.cidr).version == gateway.version]
    if not same_family:
        raise FieldError("ipam.gateway", f"{gateway} is IPv{gateway.version} but no range is")
    holding = [r for r in same_family if gateway in ipaddress.ip_network(r.cidr)]
    for r in holding or same_family:
        r.gateway = str(gateway)


def _routes(value: object) -> list[catalog_pb2.Route]:
    if not isinstance(value, list):
        raise FieldError("ipam.routes", "must be a list of {dst, gw} objects")
    routes = []
    for i, item in enumerate(value):
        path = f"ipam.routes[{i}]"
        if not isinstance(item, dict) or "dst" not in item:
            raise FieldError(path, "must be an object with 'dst' (and optionally 'gw')")
        for key in item:
            if key not in ("dst", "gw"):
                raise FieldError(f"{path}.{key}", "is not a route field (allowed: dst, gw)")
        dst = cidr_strict(f"{path}.dst", _string(f"{path}.dst", item["dst"]))
        gw = ""
        if item.get("gw"):
            address = _address(f"{path}.gw", _string(f"{path}.gw", item["gw"]))
            if address.version != dst.version:
                raise FieldError(f"{path}.gw", f"{address} is not IPv{dst.version} like dst {dst}")
            gw = str(address)
        routes.append(catalog_pb2.Route(dst=str(dst), gw=gw))
    return routes


def _nameservers(value: object) -> list[str]:
    """dns.nameservers are carried; domain/search/options are checked but IpamConfig has no field for them yet."""
    if not isinstance(value, dict):
        raise FieldError("ipam.dns", "must be an object ({nameservers, domain, search, options})")
    for key, item in value.items():
        if key not in ("nameservers", "domain", "search", "options"):
            raise FieldError(f"ipam.dns.{key}", "is not a dns field (allowed: nameservers, domain, search, options)")
        if key == "domain":
            _string("ipam.dns.domain", item)
        elif not isinstance(item, list) or not all(isinstance(x, str) for x in item):
            raise FieldError(f"ipam.dns.{key}", "must be a list of strings")
    return [str(_address(f"ipam.dns.nameservers[{i}]", s)) for i, s in enumerate(value.get("nameservers", []))]


def validate_ipam_config(config: catalog_pb2.IpamConfig, path: str = "config") -> None:
    """Check the typed form (as produced by parse_ipam_block) when it arrives over gRPC."""
    if not config.ranges:
        raise FieldError(f"{path}.ranges", "at least one range is required")
    for i, r in enumerate(config.ranges):
        field = f"{path}.ranges[{i}]"
        net = cidr_strict(f"{field}.cidr", r.cidr)
        start = _address(f"{field}.range_start", r.range_start) if r.range_start else None
        end = _address(f"{field}.range_end", r.range_end) if r.range_end else None
        check_bounds(field, net, start, end, "range_start", "range_end")
        for j, text in enumerate(r.exclude):
            excluded = cidr_strict(f"{field}.exclude[{j}]", text)
            if excluded.version != net.version:
                raise FieldError(f"{field}.exclude[{j}]", f"{text} is not IPv{net.version} like {net}")
        if r.gateway and _address(f"{field}.gateway", r.gateway).version != net.version:
            raise FieldError(f"{field}.gateway", f"{r.gateway} is not IPv{net.version} like {net}")
    for i, route in enumerate(config.routes):
        cidr_strict(f"{path}.routes[{i}].dst", route.dst)
        if route.gw:
            _address(f"{path}.routes[{i}].gw", route.gw)
    for i, server in enumerate(config.dns_nameservers):
        _address(f"{path}.dns_nameservers[{i}]", server)


def cidr_strict(field: str, text: str) -> IPNetwork:
    net = _cidr_loose(field, text)
    if ipaddress.ip_interface(text.strip()).ip != net.network_address:
        raise FieldError(field, f"{text!r} has host bits set (did you mean {net}?)")
    return net


def _cidr_loose(field: str, text: str) -> IPNetwork:
    """A CIDR whose host bits may be set, as whereabouts accepts (192.168.2.225/28 means 192.168.2.224/28)."""
    if not isinstance(text, str) or "/" not in text:
        raise FieldError(field, f"{text!r} is not a CIDR (expected e.g. 192.168.0.0/16 or fd00::/64)")
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as exc:
        raise FieldError(field, f"{text!r} is not a valid IPv4/IPv6 CIDR ({exc})") from None


def _address(field: str, text: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise FieldError(field, f"{text!r} is not an IPv4 or IPv6 address") from None


def _string(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise FieldError(field, f"must be a string, got {value!r}")
    return value


def _overlaps(a: IPNetwork, b: IPNetwork) -> bool:
    return a.version == b.version and a.overlaps(b)
