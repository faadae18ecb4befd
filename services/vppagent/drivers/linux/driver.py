"""The linux driver: pod ports as veth pairs, one routing table per network selected by ip rules, VXLAN
between nodes; all through batched rtnetlink. Everything it creates carries its ownership mark (route/rule/
neighbour protocol 109, link alias "multinet:...", tables TABLE_BASE+VNI) so a restarted agent finds it."""

from __future__ import annotations

import errno
import os

from ...errors import DataplaneError, InterfaceExists, NetnsNotFound
from ...model import (
    HOST_SIDE_MAC,
    OWNER_ALIAS_PREFIX,
    VXLAN_OVERHEAD_V4,
    VXLAN_PORT,
    DesiredNode,
    NetworkSpec,
    PortSpec,
)
from ..base import AttachResult, ReconcileReport
from . import plan, pod, sysctl
from .actual import read_host_objects
from .diff import HostObject, host_changes
from .netlink import dumps, messages
from .netlink.constants import AF_INET, AF_INET6, RT_SCOPE_LINK, RT_TABLE_MAIN
from .netlink.socket import NetlinkError, NetlinkSocket, Request


class LinuxDriver:
    name = "linux"

    def __init__(self, underlay_ifname: str = "") -> None:
        self._host = NetlinkSocket()
        self._underlay_ifname = underlay_ifname or self._default_route_ifname()

    def close(self) -> None:
        self._host.close()

    # ----------------------------------------------------------------------------------------------- node set-up
    def prepare(self) -> None:
        sysctl.enable_forwarding()
        for family in (AF_INET, AF_INET6):
            self._move_local_rule(family)

    def _move_local_rule(self, family: int) -> None:
        rules = dumps.rules(self._host, family)
        has = {(r.priority, r.table) for r in rules}
        reqs = []
        if (plan.LOCAL_RULE_PRIORITY, 255) not in has:
            reqs.append(messages.plain_rule(add=True, family=family, priority=plan.LOCAL_RULE_PRIORITY, table=255))
        if (0, 255) in has:
            reqs.append(messages.plain_rule(add=False, family=family, priority=0, table=255))
        self._host.execute(reqs)

    # ----------------------------------------------------------------------------------------------- fast path
    def attach(self, port: PortSpec, network: NetworkSpec) -> AttachResult:
        if not os.path.exists(port.netns):
            raise NetnsNotFound(f"network namespace {port.netns} does not exist")
        try:
            with NetlinkSocket(port.netns) as pod_sock:
                self._ensure_veth(port, pod_sock)
                pod.configure(pod_sock, port)
            self._apply_host(port, network)
        except NetlinkError as exc:
            raise DataplaneError(str(exc)) from exc
        except FileNotFoundError as exc:
            raise NetnsNotFound(f"network namespace {port.netns} does not exist") from exc
        return AttachResult(port.host_ifname, port.pod_mac, port.mtu)

    def _ensure_veth(self, port: PortSpec, pod_sock: NetlinkSocket) -> None:
        existing = dumps.link(pod_sock, port.ifname)
        host = dumps.link(self._host, port.host_ifname)
        if existing is not None and (host is None or existing.mac != port.pod_mac):
            raise InterfaceExists(f"interface {port.ifname} already exists in {port.netns}")
        if existing is not None:
            return  # our own pair from an earlier ADD: re-apply the configuration only
        if host is not None:
            self._host.execute([messages.link_delete(port.host_ifname)])  # half-made pair from a crash
        fd = os.open(port.netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            create = messages.veth_create(
                port.host_ifname, HOST_SIDE_MAC, port.ifname, port.pod_mac, fd, port.mtu, port.alias
            )
            outcome, marked = self._host.execute_all([create, messages.link_alias(port.host_ifname, port.alias)])
        finally:
            os.close(fd)
        if outcome.error == errno.EEXIST:
            raise InterfaceExists(f"interface {port.ifname} already exists in {port.netns}")
        outcome.raise_for_error()
        marked.raise_for_error()

    def _apply_host(self, port: PortSpec, network: NetworkSpec) -> None:
        objects = plan.HostObjects()
        plan.network_objects(network, objects)
        plan.port_objects(port, network, objects)
        sysctl.prepare_host_port(port.host_ifname)
        host = dumps.link(self._host, port.host_ifname)
        if host is None:
            raise DataplaneError(f"{port.host_ifname} vanished while being configured")
        reqs = [messages.link_up(port.host_ifname)]
        reqs += self._object_requests(objects, {port.host_ifname: host.index})
        self._host.execute(reqs)

    def detach(self, port: PortSpec) -> bool:
        existed = dumps.link(self._host, port.host_ifname) is not None
        reqs = [messages.link_delete(port.host_ifname)]  # takes the pod end, its routes and neighbours with it
        for version in plan.FAMILIES:
            reqs.append(_rule_request(plan.RuleObj(version, port.host_ifname, 0), add=False))
        self._host.execute(reqs)
        return existed

    def check(self, port: PortSpec, network: NetworkSpec) -> list[str]:
        found: list[str] = []
        host = dumps.link(self._host, port.host_ifname)
        if host is None:
            found.append(f"host interface {port.host_ifname} for {port.ifname} does not exist")
        elif not host.up:
            found.append(f"host interface {port.host_ifname} is down")
        if not os.path.exists(port.netns):
            return [*found, f"network namespace {port.netns} does not exist"]
        with NetlinkSocket(port.netns) as pod_sock:
            found += pod.problems(pod_sock, port)
        wanted = plan.HostObjects()
        plan.port_objects(port, network, wanted)
        actual = read_host_objects(self._host)
        for key in wanted.routes:
            if key not in actual.routes:
                found.append(f"host route to {key[1]} in table {key[0]} missing")
        for rule in wanted.rules:
            if not any(r.iifname == rule.iifname and r.version == rule.version for r in actual.rules):
                found.append(f"rule iif {rule.iifname} lookup {rule.table} (IPv{rule.version}) missing")
        return found

    # ----------------------------------------------------------------------------------------------- full sync
    def reconcile(self, desired: DesiredNode) -> ReconcileReport:
        report = ReconcileReport()
        actual_links = {link.name: link for link in dumps.links(self._host)}
        self._reconcile_ports(desired, actual_links, report)
        actual_links = {link.name: link for link in dumps.links(self._host)}
        self._reconcile_vxlans(desired, actual_links, report)
        actual_links = {link.name: link for link in dumps.links(self._host)}
        wanted = plan.host_objects(desired, self.tunnel_mtu())
        actual = read_host_objects(self._host, actual_links)
        changes = host_changes(wanted, actual)
        index = {name: link.index for name, link in actual_links.items()}
        deletes = [req for obj in changes.deletes for req in self._delete_request(obj, index)]
        adds = self._object_requests(changes.adds, index)
        for outcome in self._host.execute_all(deletes + adds):
            if outcome.error:
                report.problems.append(f"{outcome.request.what}: {os.strerror(outcome.error)} {outcome.kernel_msg}")
        report.removed += len(deletes)
        report.added += len(adds)
        return report

    def _reconcile_ports(self, desired: DesiredNode, links: dict[str, dumps.Link], report: ReconcileReport) -> None:
        wanted = {p.host_ifname: p for p in desired.ports.values()}
        for name, link in links.items():
            if link.alias.startswith(OWNER_ALIAS_PREFIX) and link.kind == "veth" and name not in wanted:
                self._host.execute([messages.link_delete(name)])
                report.ports_removed += 1
        for name, port in wanted.items():
            net = desired.networks.get(port.network)
            if name in links or net is None:
                continue
            if not os.path.exists(port.netns):
                report.problems.append(f"port {port.ifname} of {port.container_id}: netns {port.netns} is gone")
                continue
            try:
                self.attach(port, net)
                report.ports_recreated += 1
            except DataplaneError as exc:
                report.problems.append(f"re-creating {name}: {exc}")

    def _reconcile_vxlans(self, desired: DesiredNode, links: dict[str, dumps.Link], report: ReconcileReport) -> None:
        wanted = plan.host_objects(desired, self.tunnel_mtu()).vxlans if desired.underlay is not None else {}
        for name, link in links.items():
            if link.kind == "vxlan" and link.alias.startswith(OWNER_ALIAS_PREFIX) and name not in wanted:
                self._host.execute([messages.link_delete(name)])
                report.removed += 1
        if not wanted or desired.underlay is None:
            return
        underlay = links.get(self._underlay_ifname)
        reqs: list[Request] = []
        for name, vx in wanted.items():
            if name in links:
                continue
            index = underlay.index if underlay else 0
            reqs.append(messages.vxlan_create(name, vx.vni, desired.underlay, VXLAN_PORT, vx.mtu, vx.mac, index))
            reqs.append(messages.link_alias(name, f"{OWNER_ALIAS_PREFIX}vxlan/{vx.vni}"))
            reqs.append(messages.link_up(name))
            report.added += 1
        self._host.execute(reqs)

    def tunnel_mtu(self) -> int:
        underlay = dumps.link(self._host, self._underlay_ifname) if self._underlay_ifname else None
        return (underlay.mtu if underlay else 1500) - VXLAN_OVERHEAD_V4

    def _default_route_ifname(self) -> str:
        """The uplink when none is configured: the interface of the main table's IPv4 default route."""
        names = {link.index: link.name for link in dumps.links(self._host)}
        for route in dumps.routes(self._host, AF_INET):
            if route.table == RT_TABLE_MAIN and route.dst.prefixlen == 0 and route.oif in names:
                return names[route.oif]
        return ""

    # ----------------------------------------------------------------------------------------------- requests
    def _object_requests(self, objects: plan.HostObjects, index: dict[str, int]) -> list[Request]:
        reqs: list[Request] = []
        for rule in sorted(objects.rules, key=lambda r: (r.iifname, r.version)):
            reqs.append(_rule_request(rule, add=True))
        for neigh in objects.neighbours.values():
            if neigh.dev in index:
                reqs.append(
                    messages.neighbour(
                        add=True, index=index[neigh.dev], address=neigh.address, mac=neigh.mac, ifname=neigh.dev
                    )
                )
        for fdb in objects.fdb:
            if fdb.dev in index:
                reqs.append(
                    messages.fdb(add=True, index=index[fdb.dev], mac=fdb.mac, remote=fdb.remote, ifname=fdb.dev)
                )
        for route in objects.routes.values():
            req = _route_request(route, index, add=True)
            if req is not None:
                reqs.append(req)
        return reqs

    def _delete_request(self, obj: HostObject, index: dict[str, int]) -> list[Request]:
        if isinstance(obj, plan.RouteObj):
            req = _route_request(obj, index, add=False)
            return [req] if req is not None else []
        if isinstance(obj, plan.RuleObj):
            return [_rule_request(obj, add=False)]
        if isinstance(obj, plan.NeighObj) and obj.dev in index:
            return [
                messages.neighbour(add=False, index=index[obj.dev], address=obj.address, mac=obj.mac, ifname=obj.dev)
            ]
        if isinstance(obj, plan.FdbObj) and obj.dev in index:
            return [messages.fdb(add=False, index=index[obj.dev], mac=obj.mac, remote=obj.remote, ifname=obj.dev)]
        return []


def _rule_request(rule: plan.RuleObj, *, add: bool) -> Request:
    family = AF_INET if rule.version == 4 else AF_INET6
    return messages.rule(add=add, family=family, priority=rule.priority, table=rule.table, iifname=rule.iifname)


def _route_request(route: plan.RouteObj, index: dict[str, int], *, add: bool) -> Request | None:
    if route.unreachable:
        return messages.route(add=add, table=route.table, dst=route.dst, rtype=7)
    oif = index.get(route.dev)
    if oif is None:
        return None
    if route.gateway is None:
        return messages.route(add=add, table=route.table, dst=route.dst, oif=oif, scope=RT_SCOPE_LINK)
    return messages.route(
        add=add, table=route.table, dst=route.dst, oif=oif, gateway=route.gateway, onlink=route.onlink
    )
