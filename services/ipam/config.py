"""An `IpamConfig` (validated) → a `Plan`: each range as integer bounds and the intervals it may hand out.

Computed once per distinct config (cached by its serialized bytes): every Allocate of the same attachment reuses it."""

from __future__ import annotations

import bisect
import ipaddress
from dataclasses import dataclass

from multinet.v1 import catalog_pb2

from services.common.validate import FieldError
from services.common.whereabouts import validate_ipam_config

_CACHE_LIMIT = 1024
_cache: dict[bytes, Plan] = {}


@dataclass(frozen=True, slots=True)
class RangePlan:
    index: int
    version: int
    prefixlen: int
    cidr_lo: int  # the CIDR (static requests may use any host address of it, excluded ones included)
    cidr_hi: int
    start: int  # the dynamic range: range_start..range_end, never the network or all-ones address
    end: int
    los: tuple[int, ...]  # start..end minus exclusions and the gateway: sorted, disjoint [los[i], his[i]]
    his: tuple[int, ...]
    gateway: str
    gateway_int: int | None
    range_id: str  # cursor identity: cidr|start|end (editing exclusions keeps the cursor)

    @property
    def span(self) -> int:
        return self.end - self.start + 1

    @property
    def size(self) -> int:
        return sum(hi - lo + 1 for lo, hi in zip(self.los, self.his, strict=True))

    def allows(self, address: int) -> bool:
        i = bisect.bisect_right(self.los, address) - 1
        return i >= 0 and address <= self.his[i]

    def host(self, address: int) -> bool:
        """A usable static address: in the CIDR, not its network/all-ones address, not the gateway."""
        first, last = _host_bounds(self.cidr_lo, self.cidr_hi, self.version, self.prefixlen)
        return first <= address <= last and address != self.gateway_int


@dataclass(frozen=True, slots=True)
class Plan:
    ranges: tuple[RangePlan, ...]
    exclusive: bool  # enable_overlapping_ranges: false → the address must be free in every network


def plan_of(config: catalog_pb2.IpamConfig, path: str = "config") -> Plan:
    """Validate and plan; raises FieldError naming the field."""
    key = config.SerializeToString(deterministic=True)
    plan = _cache.get(key)
    if plan is None:
        validate_ipam_config(config, path)
        plan = Plan(
            tuple(_range_plan(i, r, f"{path}.ranges[{i}]") for i, r in enumerate(config.ranges)),
            exclusive=not config.overlapping_ranges,
        )
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        _cache[key] = plan
    return plan


def _host_bounds(lo: int, hi: int, version: int, prefixlen: int) -> tuple[int, int]:
    # The network address and the all-ones address (IPv4 broadcast; for IPv6 kept out too, as whereabouts does)
    # are never handed out, except in /31, /32, /127, /128 where every address is a host.
    if (32 if version == 4 else 128) - prefixlen >= 2:
        return lo + 1, hi - 1
    return lo, hi


def _range_plan(index: int, r: catalog_pb2.IpRange, path: str) -> RangePlan:
    net = ipaddress.ip_network(r.cidr)
    lo, hi = int(net.network_address), int(net.broadcast_address)
    first, last = _host_bounds(lo, hi, net.version, net.prefixlen)
    start = max(first, int(ipaddress.ip_address(r.range_start))) if r.range_start else first
    end = min(last, int(ipaddress.ip_address(r.range_end))) if r.range_end else last
    if start > end:
        raise FieldError(path, f"{r.cidr} between range_start and range_end has no usable host address")
    gateway = int(ipaddress.ip_address(r.gateway)) if r.gateway else None
    cuts = [(int(e.network_address), int(e.broadcast_address)) for e in map(ipaddress.ip_network, r.exclude)]
    if gateway is not None:
        cuts.append((gateway, gateway))
    intervals = _subtract(start, end, cuts)
    return RangePlan(
        index=index,
        version=net.version,
        prefixlen=net.prefixlen,
        cidr_lo=lo,
        cidr_hi=hi,
        start=start,
        end=end,
        los=tuple(a for a, _ in intervals),
        his=tuple(b for _, b in intervals),
        gateway=r.gateway,
        gateway_int=gateway,
        range_id=f"{net}|{_ip(net.version, start)}|{_ip(net.version, end)}",
    )


def _ip(version: int, value: int) -> str:
    return str(ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value))


def _subtract(lo: int, hi: int, cuts: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """[lo, hi] minus the union of the cuts, as sorted disjoint intervals."""
    out = []
    cur = lo
    for a, b in sorted(cuts):
        if b < cur:
            continue
        if a > hi:
            break
        if a > cur:
            out.append((cur, a - 1))
        cur = b + 1
        if cur > hi:
            return out
    out.append((cur, hi))
    return out
