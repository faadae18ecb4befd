"""Protobuf messages from netmgr → the agent's model, validating every field on the way in."""

from __future__ import annotations

import ipaddress

from multinet.v1 import catalog_pb2

from services.common import validate

from .errors import InvalidSpec
from .model import NetworkSpec, PortRoute, PortSpec, RemoteEndpoint


def network(msg: catalog_pb2.Network, default_mtu: int) -> NetworkSpec:
    try:
        validate.dns1123_label("network.name", msg.name)
        validate.vni("network.vni", msg.vni)
        validate.mtu("network.mtu", msg.mtu)
        ranges = tuple(validate.cidr(f"network.ranges[{i}]", r) for i, r in enumerate(msg.ranges))
    except validate.FieldError as exc:
        raise InvalidSpec(str(exc)) from None
    return NetworkSpec(msg.name, msg.vni, msg.mtu or default_mtu, ranges)


def port(msg: catalog_pb2.PodInterface, net: NetworkSpec) -> PortSpec:
    try:
        if not msg.container_id:
            raise validate.FieldError("interface.container_id", "is required")
        if problem := validate.ifname_problem(msg.ifname):
            raise validate.FieldError("interface.ifname", f"{msg.ifname!r} {problem}")
        if problem := validate.container_id_problem(msg.container_id):
            raise validate.FieldError("interface.container_id", f"{msg.container_id!r} {problem}")
        if not msg.netns.startswith("/"):
            raise validate.FieldError("interface.netns", f"{msg.netns!r} is not an absolute path")
        ips = tuple(validate.interface(f"interface.ips[{i}]", ip) for i, ip in enumerate(msg.ips))
        if not ips:
            raise validate.FieldError("interface.ips", "at least one address is required")
        routes = tuple(_route(i, r) for i, r in enumerate(msg.routes))
        mac = msg.mac.lower()
        if mac and (problem := validate.unicast_mac_problem(mac)):
            raise validate.FieldError("interface.mac", f"{msg.mac!r} {problem}")
        validate.mtu("interface.mtu", msg.mtu)
    except validate.FieldError as exc:
        raise InvalidSpec(str(exc)) from None
    host_ips = tuple(ipaddress.ip_interface(f"{ip.ip}/{ip.max_prefixlen}") for ip in ips)
    return PortSpec(msg.network, msg.container_id, msg.ifname, msg.netns, host_ips, routes, msg.mtu or net.mtu, mac)


def _route(index: int, route: catalog_pb2.Route) -> PortRoute:
    dst = validate.cidr(f"interface.routes[{index}].dst", route.dst)
    gw = validate.address(f"interface.routes[{index}].gw", route.gw) if route.gw else None
    return PortRoute(dst, gw)


def remotes(msg: catalog_pb2.PodInterface) -> list[RemoteEndpoint]:
    out = []
    for ip in msg.ips:
        try:
            out.append(RemoteEndpoint(msg.network, ipaddress.ip_address(ip.partition("/")[0]), msg.node))
        except ValueError:
            continue  # the catalog validated it; a bad entry must not stop the others
    return out
