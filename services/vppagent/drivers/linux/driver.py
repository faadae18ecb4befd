"""The linux driver: pod ports as veth pairs, one routing table per network selected by ip rules, VXLAN
between nodes; all through batched rtnetlink. Everything it creates carries its ownership mark (route/rule/
neighbour protocol 109, link alias "multinet:...", tables TABLE_BASE+VNI) so a restarted agent finds it.

Like Felix's dataplane managers it keeps a cache of what it applied: `apply` diffs the desired state against
that cache and sends only the difference (no kernel read), `reconcile` reads the kernel back and converges it
(at start, periodically, and whenever something failed and the cache can no longer be trusted).

On top of the routing path, when the kernel supports it (on by default), a tc-BPF fast path (`fastpath/`): a
program on the tcx ingress hook of every pod port and tunnel device forwards with one FIB lookup in the network's
table and a redirect; whatever it does not handle falls through to the routing path unchanged, and so does every
packet to or from a port shaped by a chained plugin (a foreign qdisc on its host veth).

Neighbour entries for pod addresses are static, so they follow the MAC the pod side actually has (a chained
`tuning` plugin may change it after the ADD): `macfollow` repairs them from a watcher thread (`podmac`) as the
pod netns announces the change, and every full resync reads the pod sides' MACs back. The dataplane thread's calls
and the watcher's repairs take turns under one lock; the watcher sends through its own socket."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator

from ...errors import DataplaneError, NetnsNotFound
from ...model import (
    OWNER_ALIAS_PREFIX,
    VXLAN_PORT,
    DesiredNode,
    NetworkSpec,
    PortSpec,
    table_for_vni,
    vxlan_overhead,
)
from ..base import AttachResult, PodMacListener, ReconcileReport
from . import plan, pod, ports, requests, sysctl
from .actual import read_host_objects
from .diff import host_changes
from .fastpath.control import Device, FastPath
from .fastpath.programs import Role
from .macfollow import MacFollower
from .netlink import dumps, messages
from .netlink.constants import AF_INET, AF_INET6, RT_TABLE_MAIN
from .netlink.socket import NetlinkSocket
from .tunnels import tunnel_problem

log = logging.getLogger("multinet.vppagent.linux")


class LinuxDriver:
    name = "linux"

    def __init__(self, underlay_ifname: str = "", fastpath: bool | None = None) -> None:
        """`fastpath`: True requires the tc-BPF fast path, False keeps it off (and removes ours at the next full
        resync), None decides by MULTINET_FASTPATH (on|off|auto, default auto), auto meaning on when the kernel
        supports it. Construct it in the node's netns: the fast path's qdisc watcher thread works there."""
        self._tunnel_rps = sysctl.tunnel_rps_mask()  # a bad MULTINET_TUNNEL_RPS stops the agent here, named
        self._fast = FastPath(fastpath)
        self._host = NetlinkSocket()
        self._underlay_ifname = underlay_ifname or self._default_route_ifname()
        self._uplink_mtu = self._read_uplink_mtu()
        self._cache: plan.HostObjects | None = None  # None: unknown, the next apply reads the kernel
        self._index: dict[str, int] = {}  # name → ifindex of the links we own (and the uplink)
        self._links: dict[str, dumps.Link] = {}
        self._retired: dict[tuple[str, str, str], int] = {}  # detached ports waiting for deletion: ifindex
        self._reaper: NetlinkSocket | None = None
        self._lock = threading.RLock()  # the dataplane thread's changes and the pod MAC watcher's, in turn
        # its watcher thread reads `_index` and updates `_cache` under `_lock`: the contract is in `macfollow`
        self._pod_macs = MacFollower(self._lock, lambda: self._index, self._pod_macs_applied)

    @property
    def fastpath(self) -> bool:
        return self._fast.enabled

    def report_pod_macs(self, listener: PodMacListener) -> None:
        """`listener(port key, pod netns, MAC)` is told of every pod side whose MAC is not its port's (a chained
        plugin set another): at each full resync and as the watch sees a change. Called under the driver's lock,
        from the dataplane or the watcher thread: it must hand the news on without blocking."""
        with self._lock:
            self._pod_macs.listener = listener

    def settle_fastpath(self, timeout: float = 5.0) -> bool:
        """Wait for the fast path's background attachments (tests, benchmarks)."""
        return self._fast.settle(timeout)

    def close(self) -> None:
        self._pod_macs.close()  # first, outside the lock: its thread may be waiting for it
        self._fast.close()
        self._host.close()
        if self._reaper is not None:
            self._reaper.close()

    # ------------------------------------------------------------------------------------------------ node
    def prepare(self) -> None:
        sysctl.enable_forwarding()
        for family in (AF_INET, AF_INET6):
            self._move_local_rule(family)

    def _move_local_rule(self, family: int) -> None:
        has = {(r.priority, r.table) for r in dumps.rules(self._host, family)}
        reqs = []
        if (plan.LOCAL_RULE_PRIORITY, 255) not in has:
            reqs.append(messages.plain_rule(add=True, family=family, priority=plan.LOCAL_RULE_PRIORITY, table=255))
        if (0, 255) in has:
            reqs.append(messages.plain_rule(add=False, family=family, priority=0, table=255))
        self._host.execute(reqs)

    def tunnel_mtu(self, underlay_v6: bool = False) -> int:
        return self._uplink_mtu - vxlan_overhead(underlay_v6)

    def _tunnel_mtu_for(self, desired: DesiredNode) -> int:
        return self.tunnel_mtu(desired.underlay is not None and desired.underlay.version == 6)

    def _read_uplink_mtu(self) -> int:
        uplink = dumps.link(self._host, self._underlay_ifname) if self._underlay_ifname else None
        return uplink.mtu if uplink else 1500

    def _default_route_ifname(self) -> str:
        """The uplink when none is configured: the interface of the main table's IPv4 default route."""
        names = {link.index: link.name for link in dumps.links(self._host)}
        for route in dumps.routes(self._host, AF_INET):
            if route.table == RT_TABLE_MAIN and route.dst.prefixlen == 0 and route.oif in names:
                return names[route.oif]
        return ""

    # ------------------------------------------------------------------------------------------------ fast path
    def attach(self, port: PortSpec, network: NetworkSpec) -> AttachResult:
        with self._lock:
            try:
                return self._attach(port, network)
            except BaseException:
                self._pod_macs.unwatch_if_unused(port.netns)
                raise

    def _attach(self, port: PortSpec, network: NetworkSpec) -> AttachResult:
        if not os.path.exists(port.netns):
            raise NetnsNotFound(f"network namespace {port.netns} does not exist")
        try:
            with NetlinkSocket(port.netns) as pod_sock:
                self._index[port.host_ifname] = ports.ensure_veth(self._host, pod_sock, port)
                self._pod_macs.watch_pod(port.netns)  # before the MAC is read: a change from now on is announced
                link = pod.configure(pod_sock, port)
            objects = plan.HostObjects()
            plan.network_objects(network, objects)
            plan.port_objects(port, network, objects)
            plan.follow_macs(objects, {port.host_ifname: link.mac})
            sysctl.prepare_host_port(port.host_ifname)
            self._host.execute([messages.link_up(port.host_ifname), *requests.adds(objects, self._index)])
            device = Device(port.host_ifname, self._index[port.host_ifname], network.table, Role.PORT)
            self._fast.attach(device)  # in the background: the routing path carries the first packets
        except FileNotFoundError as exc:
            raise NetnsNotFound(f"network namespace {port.netns} does not exist") from exc
        except OSError as exc:  # NetlinkError included
            raise DataplaneError(str(exc)) from exc
        if self._cache is not None:
            self._cache.merge(objects)
        self._pod_macs.record_pod(port, link)
        return AttachResult(port.host_ifname, link.mac or port.pod_mac, port.mtu)  # what the pod has (a repeat)

    def detach(self, port: PortSpec) -> bool:
        """Free the pod's interface name and unroute the port now. Destroying a veth takes the kernel ~20 ms of
        RCU grace, mostly outside its lock: `finish_detach` does it later, from another thread, by ifindex (so a
        link re-created under the same name meanwhile is never touched)."""
        with self._lock, _as_dataplane_error(f"detach {port.ifname} of {port.container_id}"):
            return self._detach(port)

    def _detach(self, port: PortSpec) -> bool:
        self._pod_macs.forget_pod(port.host_ifname)
        host = dumps.link(self._host, port.host_ifname)
        if host is not None and os.path.exists(port.netns):
            with contextlib.suppress(OSError), NetlinkSocket(port.netns) as pod_sock:
                ours = dumps.link(pod_sock, port.ifname)
                if ours is not None and ours.peer_index == host.index:
                    pod.forget_leg(pod_sock, port.netns, ours.index)
                    pod_sock.execute([messages.link_retire(ours.index, ports.retired_name(port), port.ifname)])
        reqs = [requests.rule(plan.RuleObj(version, port.host_ifname, 0), add=False) for version in plan.FAMILIES]
        if host is not None:
            reqs.append(messages.link_set_down(host.index, port.host_ifname))
            self._retired[port.key] = host.index
            self._fast.forget(host.index)
        self._host.execute(reqs)
        self._index.pop(port.host_ifname, None)
        if self._cache is not None:
            self._cache.forget_port(port.host_ifname)
        return host is not None

    def finish_detach(self, port: PortSpec) -> None:
        """Delete the retired pair (thread-safe: its own socket; called off the dataplane thread)."""
        index = self._retired.pop(port.key, None)
        if index is None:
            return
        if self._reaper is None:
            self._reaper = NetlinkSocket()
        self._reaper.execute([messages.link_delete_index(index, port.host_ifname)])

    def check(self, port: PortSpec, network: NetworkSpec) -> list[str]:
        with _as_dataplane_error(f"check {port.ifname} of {port.container_id}"):
            return self._check(port, network)

    def _check(self, port: PortSpec, network: NetworkSpec) -> list[str]:
        found: list[str] = []
        host = dumps.link(self._host, port.host_ifname)
        if host is None:
            found.append(f"host interface {port.host_ifname} for {port.ifname} does not exist")
        elif not host.up:
            found.append(f"host interface {port.host_ifname} is down")
        try:
            with NetlinkSocket(port.netns) as pod_sock:
                found += pod.problems(pod_sock, port)
        except FileNotFoundError:
            return [*found, f"network namespace {port.netns} does not exist"]
        if host is not None:
            problem = self._fast.problem(self._host, Device(host.name, host.index, network.table, Role.PORT))
            found += [problem] if problem else []
        wanted = plan.HostObjects()
        plan.port_objects(port, network, wanted)
        actual = read_host_objects(self._host)
        found += [
            f"host route to {key[1]} in table {key[0]} missing" for key in wanted.routes if key not in actual.routes
        ]
        found += [
            f"rule iif {r.iifname} lookup {r.table} (IPv{r.version}) missing"
            for r in wanted.rules
            if r not in actual.rules
        ]
        # the node reaches the pod through a static entry: it must name the MAC the pod side has (`port`'s, which
        # CNI CHECK takes from the final result: a chained plugin's MAC included)
        found += [
            f"neighbour {n.address} on {n.dev} missing or not {n.mac}"
            for key, n in wanted.neighbours.items()
            if actual.neighbours.get(key) != n
        ]
        return found

    # ------------------------------------------------------------------------------------------------ converge
    def apply(self, desired: DesiredNode) -> ReconcileReport:
        """Converge by difference against what was applied last; falls back to `reconcile` when unsure."""
        with self._lock:
            if self._cache is None:
                return self._reconcile(desired)
            report = ReconcileReport()
            wanted = plan.host_objects(desired, self._tunnel_mtu_for(desired))
            self._sync_ports(desired, wanted, self._cache.ports, report)
            self._sync_vxlans(desired, wanted, set(self._cache.vxlans), report)
            plan.follow_macs(wanted, self._pod_macs.macs())
            self._sync_objects(wanted, self._cache, report)
            return report

    def reconcile(self, desired: DesiredNode) -> ReconcileReport:
        """Read back everything the agent owns in the kernel and converge it to `desired`."""
        with self._lock:
            return self._reconcile(desired)

    def _reconcile(self, desired: DesiredNode) -> ReconcileReport:
        report = ReconcileReport()
        self._uplink_mtu = self._read_uplink_mtu()
        self._refresh_index()
        owned = {name for name, link in self._links.items() if link.alias.startswith(OWNER_ALIAS_PREFIX)}
        wanted = plan.host_objects(desired, self._tunnel_mtu_for(desired))
        self._fast.retain({net.table for net in desired.networks.values()})
        self._sync_ports(desired, wanted, {n for n in owned if self._links[n].kind == "veth"}, report)
        tunnels = {n for n in owned if self._links[n].kind == "vxlan"}
        self._sync_vxlans(
            desired, wanted, tunnels - self._replace_stale_tunnels(desired, wanted, tunnels, report), report
        )
        self._refresh_index()
        for name in wanted.vxlans.keys() & self._links.keys():  # also tunnels an earlier agent configured
            self._steer_tunnel(name)
        self._pod_macs.follow(desired, wanted)
        self._sync_objects(wanted, read_host_objects(self._host, self._links), report)
        self._sync_fastpath(desired, wanted, report)
        return report

    def _remove_owned_link(self, name: str) -> None:
        """A port or tunnel of ours that is no longer wanted: off every book (pod MACs, fast path), then gone."""
        self._pod_macs.forget_pod(name)
        index = self._index.pop(name, None)
        if index is not None:
            self._fast.forget(index)
        self._host.execute([messages.link_delete(name)])

    def _steer_tunnel(self, name: str) -> None:
        """Level-triggered: our tunnels carry exactly the configured receive steering (none: the kernel's 0)."""
        if not sysctl.steer_receive(name, self._tunnel_rps or "0") and self._tunnel_rps:
            log.warning("receive steering %s not applied to %s", self._tunnel_rps, name)

    def _refresh_index(self) -> None:
        self._links = {link.name: link for link in dumps.links(self._host)}
        self._index = {name: link.index for name, link in self._links.items()}

    def _sync_ports(
        self, desired: DesiredNode, wanted: plan.HostObjects, present: set[str], report: ReconcileReport
    ) -> None:
        for name in sorted(present - wanted.ports):
            self._remove_owned_link(name)
            report.ports_removed += 1
        for port in desired.ports.values():
            if port.host_ifname in present:
                continue
            net = desired.networks.get(port.network)
            if net is None:
                continue
            try:
                self.attach(port, net)
                report.ports_recreated += 1
            except DataplaneError as exc:
                # the port cannot exist now (its pod is gone?): keep it out of what we believe is applied
                report.problems.append(f"port {port.ifname} of {port.container_id} ({port.network}): {exc}")
                wanted.forget_port(port.host_ifname)

    def _replace_stale_tunnels(
        self, desired: DesiredNode, wanted: plan.HostObjects, tunnels: set[str], report: ReconcileReport
    ) -> set[str]:
        """Our tunnels made for another VNI or VTEP address are deleted (to be created anew, returned); an MTU that
        no longer fits the uplink is set in place."""
        if desired.underlay is None:
            return set()
        stale, reqs = set(), []
        for name in sorted(tunnels & set(wanted.vxlans)):
            vx, link = wanted.vxlans[name], self._links[name]
            if tunnel_problem(link, vx, desired.underlay):
                stale.add(name)
                reqs.append(messages.link_delete(name))
            elif link.mtu != vx.mtu:
                reqs.append(messages.link_up(name, vx.mtu))
        self._host.execute(reqs)
        report.removed += len(stale)
        report.added += len(reqs) - len(stale)
        return stale

    def _sync_vxlans(
        self, desired: DesiredNode, wanted: plan.HostObjects, present: set[str], report: ReconcileReport
    ) -> None:
        for name in sorted(present - set(wanted.vxlans)):
            self._remove_owned_link(name)
            report.removed += 1
        missing = [vx for name, vx in wanted.vxlans.items() if name not in present]
        if not missing or desired.underlay is None:
            return
        underlay = self._index.get(self._underlay_ifname, 0)
        # an existing device of that name (EEXIST) is checked below before anything marks it as ours
        self._host.execute(
            [
                messages.vxlan_create(vx.name, vx.vni, desired.underlay, VXLAN_PORT, vx.mtu, vx.mac, underlay)
                for vx in missing
            ]
        )
        finish = []
        for vx in missing:
            link = dumps.link(self._host, vx.name)
            problem = tunnel_problem(link, vx, desired.underlay)
            if link is None or problem:
                report.problems.append(f"{problem}: left alone, the network has no tunnel on this node")
                continue
            self._index[vx.name] = link.index
            self._steer_tunnel(vx.name)
            self._fast.attach(Device(vx.name, link.index, table_for_vni(vx.vni), Role.TUNNEL))
            finish += [
                messages.link_alias(vx.name, f"{OWNER_ALIAS_PREFIX}vxlan/{vx.vni}"),
                messages.link_up(vx.name, vx.mtu),
            ]
            report.added += 1
        self._host.execute(finish)

    def _sync_fastpath(self, desired: DesiredNode, wanted: plan.HostObjects, report: ReconcileReport) -> None:
        """Every port and tunnel present runs the current program, shaped ports none (a restarted agent's
        hand-over of identical programs is no change: see fastpath.control)."""
        devices = [
            Device(vx.name, self._index[vx.name], table_for_vni(vx.vni), Role.TUNNEL)
            for vx in wanted.vxlans.values()
            if vx.name in self._index
        ]
        for port in desired.ports.values():
            net = desired.networks.get(port.network)
            if net is not None and port.host_ifname in wanted.ports and port.host_ifname in self._index:
                devices.append(Device(port.host_ifname, self._index[port.host_ifname], net.table, Role.PORT))
        result = self._fast.sync(self._host, devices)
        report.added += result.attached
        report.removed += result.removed
        report.problems += result.problems

    def _sync_objects(self, wanted: plan.HostObjects, current: plan.HostObjects, report: ReconcileReport) -> None:
        changes = host_changes(wanted, current)
        deletes = requests.deletes(changes.deletes, self._index)
        adds = requests.adds(changes.adds, self._index)
        failed = [o for o in self._host.execute_all(deletes + adds) if o.error]
        report.problems += [f"{o.request.what}: {os.strerror(o.error)} {o.kernel_msg}".strip() for o in failed]
        report.removed += len(deletes)
        report.added += len(adds)
        self._cache = None if failed else wanted

    def _pod_macs_applied(self, objects: plan.HostObjects | None) -> None:
        """The pod MAC watcher replaced neighbour entries behind `apply`'s back (its thread, under the lock): the
        cache records them, or is dropped when some failed (the next apply reads the kernel back and repairs)."""
        if objects is None:
            self._cache = None
        elif self._cache is not None:
            self._cache.neighbours.update(objects.neighbours)


@contextlib.contextmanager
def _as_dataplane_error(what: str) -> Iterator[None]:
    """What the kernel refused, as the error the agent's callers handle (a CNI error, not a crashed RPC)."""
    try:
        yield
    except OSError as exc:  # NetlinkError included
        raise DataplaneError(f"{what}: {exc}") from exc
