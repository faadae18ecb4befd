"""Plain values the IPAM core works with: no gRPC types, so the core and the stores are unit-testable."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class OwnerKey:
    """The CNI idempotency key. Never the pod name: a re-created pod with the same name is a different owner."""

    network: str
    container_id: str
    ifname: str


@dataclass(frozen=True, slots=True)
class Lease:
    """One reserved address, with what a CNI result needs to report it."""

    version: int  # 4 or 6: the two families are separate address spaces (10.0.0.1 and ::a00:1 are both 167772161)
    address: int
    prefixlen: int
    gateway: str = ""
    range_index: int = 0

    @property
    def ip(self) -> str:
        return str(ipaddress.IPv4Address(self.address) if self.version == 4 else ipaddress.IPv6Address(self.address))

    @property
    def cidr(self) -> str:
        return f"{self.ip}/{self.prefixlen}"


@dataclass(frozen=True, slots=True)
class Holding:
    """Everything one owner holds: written and removed as one unit, so an owner never holds half an allocation."""

    key: OwnerKey
    leases: tuple[Lease, ...]
    pod_ref: str = ""
    created_ms: int = 0
    # Changes whenever the owner's reservation is re-created (etcd create revision, SQLite creation time in ns):
    # a conditional release of a listed holding never removes a newer one with the same key.
    generation: int = 0


@dataclass(frozen=True, slots=True)
class AllocateResult:
    leases: tuple[Lease, ...]
    existing: bool  # the owner already held these (a repeated ADD)


@dataclass(frozen=True, slots=True)
class PoolStatus:
    size: int
    reserved: int
    exhausted: bool
    exhausted_ranges: tuple[int, ...] = field(default=())
