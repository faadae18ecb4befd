"""Kernel objects as read back from rtnetlink dumps (plain records, shared by dumps and messages)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Link:
    index: int
    name: str
    kind: str
    alias: str
    mac: str
    mtu: int
    up: bool
    peer_index: int = 0  # IFLA_LINK: for a veth, the other end's index (in the peer's netns)
    vxlan: VxlanInfo | None = None  # for a vxlan device: what identifies the tunnel


@dataclass(frozen=True, slots=True)
class VxlanInfo:
    vni: int
    local: IPAddress | None


@dataclass(frozen=True, slots=True)
class Address:
    index: int
    address: IPAddress
    prefixlen: int


@dataclass(frozen=True, slots=True)
class Route:
    table: int
    dst: IPNetwork
    oif: int
    gateway: IPAddress | None
    protocol: int
    rtype: int
    scope: int
    onlink: bool


@dataclass(frozen=True, slots=True)
class Rule:
    family: int
    priority: int
    table: int
    iifname: str
    protocol: int
    src: IPAddress | None = None
    src_len: int = 0
    fwmark: int = 0


@dataclass(frozen=True, slots=True)
class Neighbour:
    family: int
    index: int
    address: IPAddress | None
    mac: str
    state: int
    protocol: int


@dataclass(frozen=True, slots=True)
class Qdisc:
    """A queueing discipline as dumped or announced: its device, handle, parent and kind ("noqueue", "tbf"...)."""

    index: int
    handle: int
    parent: int
    kind: str
