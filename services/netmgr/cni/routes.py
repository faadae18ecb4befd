"""Routes inside the pod for one interface: the network's ranges, the IPAM config's extra routes, and a default
route only when the attachment asks for one. All go through the port's link-local gateway: the pod's link is
point-to-point with the node, which does the routing (a `gw` in an IPAM route would not be on-link)."""

from __future__ import annotations

import ipaddress
from collections.abc import Collection

from multinet.v1 import catalog_pb2

DEFAULTS = {4: "0.0.0.0/0", 6: "::/0"}
GATEWAYS = {4: "169.254.1.1", 6: "fe80::1"}


def pod_routes(
    net: catalog_pb2.Network, ipam: catalog_pb2.IpamConfig, families: set[int], default_families: Collection[int] = ()
) -> list[catalog_pb2.Route]:
    """`default_families`: the address families that get a default route (none unless the attachment asks)."""
    routes: list[catalog_pb2.Route] = []
    seen: set[str] = set()

    def add(dst: str) -> None:
        version = ipaddress.ip_network(dst).version
        if dst not in seen and version in families:
            seen.add(dst)
            routes.append(catalog_pb2.Route(dst=dst, gw=GATEWAYS[version]))

    for cidr in net.ranges:
        add(cidr)
    for ipam_range in ipam.ranges:
        add(ipam_range.cidr)
    for route in ipam.routes:
        add(route.dst)
    for family in sorted(set(default_families) & families):
        add(DEFAULTS[family])
    return routes
