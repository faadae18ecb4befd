"""The vpp driver: the same desired state as the linux driver, programmed into VPP through its binary API.

Per network: one VRF (IPv4 and IPv6 tables, id TABLE_BASE+VNI) ending in a drop route, and a loopback holding the
pods' gateway address that taps and tunnels are unnumbered to. Per pod port: a TAP created by VPP inside the pod's
netns, in the VRF, with a static neighbour and a host route to the pod. Per (peer node, network, inner family): an
L3 VXLAN tunnel decapsulating into the VRF, and a route per remote pod through it.

Everything the driver creates carries a "multinet:" interface tag, or lives in a VRF in its table range, so a
restarted agent rebuilds its view from VPP's own dumps: it keeps no state besides the connection."""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any, Literal

from ...errors import DataplaneError, InterfaceExists, InvalidSpec, NetnsNotFound
from ...model import OWNER_ALIAS_PREFIX, DesiredNode, NetworkSpec, PortSpec, vxlan_overhead
from ..base import AttachResult, PodMacListener, ReconcileReport
from . import actual, calls, diff, plan
from .actual import ActualTunnel, Interface, Snapshot
from .api import DEFAULT_API_DIR, DEFAULT_API_SOCKET, PapiConnection, VppApi, VppApiError, run
from .calls import Call
from .podside import LinkState, NetlinkPodSide, PodSide
from .tunnels import VxlanTunnels

log = logging.getLogger("multinet.vppagent.vpp")

NETNS_PATH_MAX = 63  # tap_create_v3.host_namespace is string[64]
IFNAME_MAX = 15
DEFAULT_UPLINK_MTU = 1500
MANAGED_TAGS = (plan.PORT_TAG, plan.NET_TAG, plan.TUNNEL_TAG)


class VppDriver:
    name = "vpp"

    def __init__(
        self,
        connect: Callable[[], VppApi],
        *,
        pod_side: PodSide | None = None,
        uplink: str = "",
        vxlan_ports: Mapping[int, int] | None = None,
    ) -> None:
        self._connect = connect
        self._conn: VppApi | None = None
        self._pod = pod_side or NetlinkPodSide()
        self._uplink = uplink  # VPP's name of the underlay interface, for tunnel_mtu()
        self._ports = dict(vxlan_ports or plan.VXLAN_PORTS)
        self._vxlan: VxlanTunnels | None = None  # one per connection: use _tunnels

    # ------------------------------------------------------------------------------------------------ connection
    @property
    def _api(self) -> VppApi:
        if self._conn is not None and not self._conn.alive():
            # VPP went away (restart): everything it held is gone too; the next reconcile rebuilds it from the
            # desired state, pods' taps included (their kernel ends died with VPP's file descriptors).
            log.warning("VPP connection lost, reconnecting")
            self.close()
        if self._conn is None:
            self._conn = self._connect()
            self._vxlan = VxlanTunnels(self._conn)  # graph arcs belong to one VPP process
        return self._conn

    @property
    def _tunnels(self) -> VxlanTunnels:
        """The VXLAN part of the current connection: reaching it (re)connects, as _api does."""
        self._api  # noqa: B018 -- the property connects, and makes _vxlan with the connection
        assert self._vxlan is not None
        return self._vxlan

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            self._vxlan = None

    def prepare(self) -> None:
        """Connect now, so a missing VPP fails the agent's start rather than its first pod."""
        self._api  # noqa: B018 -- the property connects

    def tunnel_mtu(self, underlay_v6: bool = False) -> int:
        mtu = DEFAULT_UPLINK_MTU
        if self._uplink:
            for iface in actual.interfaces(self._api).values():
                if iface.name == self._uplink and iface.mtu:
                    mtu = iface.mtu
        # The L3 tunnels here carry no inner Ethernet header (36 bytes of overhead over IPv4), but a network's MTU
        # is one value for all its nodes, and linux nodes need 50 (70 over IPv6).
        return mtu - vxlan_overhead(underlay_v6)

    def _exec(self, call: Call, report: ReconcileReport, count: Literal["added", "removed", ""] = "added") -> Any:
        """Send one request and count it as a change ("" for the steps of a change already counted)."""
        reply = run(self._api, call)
        if count == "added":
            report.added += 1
        elif count == "removed":
            report.removed += 1
        return reply

    # ------------------------------------------------------------------------------------------------ fast path
    def attach(self, port: PortSpec, network: NetworkSpec) -> AttachResult:
        _validate(port)
        if not os.path.exists(port.netns):
            raise NetnsNotFound(f"network namespace {port.netns} does not exist")
        want = plan.VppObjects()
        plan.network_objects(network, want)
        plan.port_objects(port, network, want)
        tap = want.taps[plan.port_tag(port)]
        report = ReconcileReport()  # the fast path reports nothing; the counters are for reconcile
        snap = actual.snapshot(self._api)
        for vrf in want.vrfs.values():
            self._ensure_vrf(vrf, snap, report)
        loop_sw = self._ensure_loopback(want.loopbacks[tap.loopback], snap, report)
        iface, fresh = self._ensure_tap(tap, snap, report)
        sw = iface.sw_if_index
        self._bind(sw, tap.table_id, loop_sw, snap, report, fresh=fresh)
        if fresh or not iface.up:
            self._exec(calls.admin_up(sw), report)
        # Re-sent on every attach: both are idempotent in VPP (a static neighbour is updated in place, a route add
        # with is_multipath=false replaces its paths), which keeps the fast path free of whole-VRF dumps.
        for neigh in want.neighbours.values():
            self._exec(calls.neighbour(sw, neigh.address, neigh.mac, add=True), report)
        for route in want.routes.values():
            if not route.is_drop:
                self._exec(calls.route(route, sw, add=True), report)
        self._pod.configure(port)
        return AttachResult(iface.name, port.pod_mac, port.mtu)

    def _ensure_vrf(self, vrf: plan.Vrf, snap: Snapshot, report: ReconcileReport) -> None:
        if vrf.key in snap.tables:
            return
        self._exec(calls.table(vrf, add=True), report)
        snap.tables.add(vrf.key)
        # VPP's own default entry in a new table drops already; ours (API-sourced) states the intent in dumps and
        # stays if the default source ever changes.
        family = 6 if vrf.is_ip6 else 4
        self._exec(calls.route(plan.Route(vrf.table_id, plan.DEFAULTS[family]), add=True), report)

    def _in_table(self, sw: int, table_id: int) -> bool:
        return all(actual.interface_table(self._api, sw, is_ip6=f) == table_id for f in (False, True))

    def _ensure_loopback(self, loop: plan.Loopback, snap: Snapshot, report: ReconcileReport) -> int:
        iface = snap.by_tag.get(loop.tag)
        if iface is not None and not self._in_table(iface.sw_if_index, loop.table_id):
            # VPP will not move an interface that has an address: start that loopback over, releasing the
            # interfaces that borrow its address first (they are re-pointed at the new one by _bind).
            for borrower in [sw for sw, lender in snap.unnumbered.items() if lender == iface.sw_if_index]:
                self._exec(calls.unnumbered(iface.sw_if_index, borrower, add=False), report, "removed")
                del snap.unnumbered[borrower]
            self._exec(calls.delete_loopback(iface.sw_if_index), report, "removed")
            snap.interfaces.pop(iface.sw_if_index, None)
            iface = None
        if iface is None:
            sw = int(self._exec(calls.create_loopback(loop), report).sw_if_index)
            self._exec(calls.tag(sw, loop.tag), report, "")
            for is_ip6 in (False, True):  # tables first: VPP refuses to move an interface with an address
                self._exec(calls.set_table(sw, loop.table_id, is_ip6=is_ip6), report, "")
            iface = Interface(sw, "", loop.tag, False, 0)
            snap.interfaces[sw] = iface
        sw = iface.sw_if_index
        if loop.address not in actual.addresses(self._api, sw, is_ip6=False):
            self._exec(calls.add_address(sw, loop.address), report)
        if not iface.up:
            self._exec(calls.admin_up(sw), report)
            snap.interfaces[sw] = Interface(sw, iface.name, iface.tag, True, iface.mtu)
        return sw

    def _ensure_tap(self, tap: plan.Tap, snap: Snapshot, report: ReconcileReport) -> tuple[Interface, bool]:
        """The VPP tap of a port, created if needed; True when it was just created."""
        port = tap.port
        iface = snap.by_tag.get(tap.tag)
        state = self._pod.link_state(port)
        if iface is not None and state is LinkState.ABSENT:
            # The pod end vanished (the netns was replaced): the VPP end is of no use any more.
            self._remove_port(iface.sw_if_index, port, report)
            snap.interfaces.pop(iface.sw_if_index, None)
            iface = None
        if state is LinkState.FOREIGN or (iface is None and state is LinkState.OURS):
            raise InterfaceExists(f"interface {port.ifname} already exists in {port.netns}")
        if iface is not None:
            return iface, False
        call = calls.tap_create(tap)
        reply = self._api.call(call.msg, dict(call.fields))
        retval = int(reply.retval)
        if retval == calls.RV_NETLINK_ERROR and self._pod.link_state(port) is not LinkState.ABSENT:
            raise InterfaceExists(f"interface {port.ifname} already exists in {port.netns}")
        if retval != calls.RV_OK:
            raise VppApiError(call, retval)
        report.added += 1
        sw = int(reply.sw_if_index)
        found = actual.interfaces(self._api, sw).get(sw)
        iface = Interface(sw, found.name if found else f"tap-{sw}", tap.tag, False, port.mtu)
        snap.interfaces[sw] = iface
        return iface, True

    def _bind(
        self, sw: int, table_id: int, loop_sw: int, snap: Snapshot, report: ReconcileReport, *, fresh: bool
    ) -> None:
        """Put an interface in a VRF (both families) and make it unnumbered to the VRF's loopback.

        Order matters to VPP: a table change is refused once the interface borrows an address (even for the table
        it is already in), and unnumbered is refused between interfaces of different tables."""
        if fresh:
            moves = [False, True]
        else:
            moves = [f for f in (False, True) if actual.interface_table(self._api, sw, is_ip6=f) != table_id]
        if moves:
            borrowed = snap.unnumbered.pop(sw, None)
            if borrowed is not None:
                self._exec(calls.unnumbered(borrowed, sw, add=False), report, "removed")
            for is_ip6 in moves:
                self._exec(calls.set_table(sw, table_id, is_ip6=is_ip6), report)
        if snap.unnumbered.get(sw) != loop_sw:
            self._exec(calls.unnumbered(loop_sw, sw), report)
            snap.unnumbered[sw] = loop_sw

    def detach(self, port: PortSpec) -> bool:
        iface = actual.snapshot(self._api).by_tag.get(plan.port_tag(port))
        if iface is None:
            return False
        self._remove_port(iface.sw_if_index, port, ReconcileReport())
        return True

    def _remove_port(self, sw: int, port: PortSpec, report: ReconcileReport) -> None:
        # Routes first: VPP keeps a route through a deleted interface and revives it when it hands the same
        # sw_if_index to the next interface. Only a route that still goes through this tap is ours to delete (the
        # address may already belong to a newer pod of the same network).
        for ip in port.ips:
            table_id = actual.interface_table(self._api, sw, is_ip6=ip.version == 6)
            prefix = ipaddress.ip_network(ip.ip)
            current = actual.lookup(self._api, table_id, prefix)
            if current is not None and current.paths and all(p.sw_if_index == sw for p in current.paths):
                self._exec(calls.route_delete(table_id, prefix), report, "removed")
        self._exec(calls.tap_delete(sw), report, "removed")

    def check(self, port: PortSpec, network: NetworkSpec) -> list[str]:
        found: list[str] = []
        api = self._api
        snap = actual.snapshot(api)
        tag = plan.port_tag(port)
        iface = snap.by_tag.get(tag)
        if iface is None:
            found.append(f"VPP has no tap for {port.ifname} (tag {tag})")
        else:
            found += self._check_tap(port, network, iface, snap)
        if not os.path.exists(port.netns):
            return [*found, f"network namespace {port.netns} does not exist"]
        return found + self._pod.problems(port)

    def _check_tap(self, port: PortSpec, network: NetworkSpec, iface: Interface, snap: Snapshot) -> list[str]:
        found: list[str] = []
        sw = iface.sw_if_index
        if not iface.up:
            found.append(f"VPP interface {iface.name} is down")
        for is_ip6 in (False, True):
            table_id = actual.interface_table(self._api, sw, is_ip6=is_ip6)
            if table_id != network.table:
                found.append(f"VPP interface {iface.name} is in IPv{6 if is_ip6 else 4} table {table_id}")
        loop = snap.by_tag.get(plan.network_tag(network.vni))
        if loop is None:
            found.append(f"VPP has no loopback for network {network.name}")
        elif snap.unnumbered.get(sw) != loop.sw_if_index:
            found.append(f"VPP interface {iface.name} is not unnumbered to the network's loopback")
        neighbours = {n.address: n for n in actual.neighbours(self._api, sw)}
        for ip in port.ips:
            neigh = neighbours.get(ip.ip)
            if neigh is None or neigh.mac != port.pod_mac:
                found.append(f"VPP has no neighbour {ip.ip} -> {port.pod_mac} on {iface.name}")
            want = plan.Route(network.table, ipaddress.ip_network(ip.ip), plan.port_tag(port), ip.ip)
            have = actual.lookup(self._api, network.table, want.prefix)
            if have is None or not diff.route_matches(want, have, {want.iface: sw}):
                found.append(f"VPP route to {want.prefix} via {iface.name} in table {network.table} missing")
        return found

    # ------------------------------------------------------------------------------------------------ full sync
    def finish_detach(self, port: PortSpec) -> None:
        """Nothing is deferred: VPP deletes a tap at once."""

    def report_pod_macs(self, listener: PodMacListener) -> None:
        """Pod MACs are not followed here (taps: the MAC is VPP's to give)."""

    def apply(self, desired: DesiredNode) -> ReconcileReport:
        """VPP answers dumps quickly and the driver keeps no cache of its own: every apply reads back."""
        return self.reconcile(desired)

    def reconcile(self, desired: DesiredNode) -> ReconcileReport:
        report = ReconcileReport()
        want = plan.vpp_objects(desired, self._ports)
        report.problems.extend(want.problems)
        snap = actual.snapshot(self._api)
        owned = {t: i for t, i in snap.by_tag.items() if t.startswith(MANAGED_TAGS)}
        read = self._tunnels.read(want, owned, report)
        tunnels = read if read is not None else {}
        doomed = {t: i for t, i in owned.items() if t not in want.tags}
        if read is None:  # tunnels cannot be read (vxlan plugin missing): leave them all alone
            doomed = {t: i for t, i in doomed.items() if not t.startswith(plan.TUNNEL_TAG)}
        else:  # parameters changed: delete, create again below
            doomed.update(self._tunnels.changed(want.tunnels, owned, tunnels, report))
        doomed_sw = frozenset(i.sw_if_index for i in doomed.values())

        self._sync_routes(want, snap, report, doomed_sw, adds=False)
        for tag, iface in sorted(doomed.items(), key=lambda item: item[0].startswith(plan.NET_TAG)):
            self._delete_owned(tag, iface, tunnels, snap, report)  # loopbacks last: others borrow their address
        for vrf in want.vrfs.values():
            self._guard(report, f"table {vrf.table_id}", self._ensure_vrf, vrf, snap, report)
        loops: dict[str, int] = {}
        for loop in want.loopbacks.values():
            sw = self._guard(report, f"loopback {loop.tag}", self._ensure_loopback, loop, snap, report)
            if sw is not None:
                loops[loop.tag] = sw
        for tap in want.taps.values():
            self._sync_tap(tap, desired, snap, loops, report)
        for tun in want.tunnels.values() if read is not None else ():
            if tun.loopback in loops:
                self._guard(report, f"tunnel {tun.tag}", self._sync_tunnel, tun, snap, loops, report)
        snap.interfaces = actual.interfaces(self._api)
        self._sync_neighbours(want, snap, report)
        self._sync_routes(want, snap, report, frozenset(), adds=True)
        for key in sorted(snap.tables):
            if actual.owned_table(key[0]) and key not in want.vrfs:
                vrf = plan.Vrf(key[0], key[1], "")
                self._guard(report, f"table {key[0]}", self._exec, calls.table(vrf, add=False), report, "removed")
        return report

    def _guard(self, report: ReconcileReport, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """One object's failure is a problem to report, not a reason to leave the others unconverged."""
        try:
            return fn(*args)
        except DataplaneError as exc:
            report.problems.append(f"{what}: {exc}")
            return None

    def _sync_tap(
        self, tap: plan.Tap, desired: DesiredNode, snap: Snapshot, loops: dict[str, int], report: ReconcileReport
    ) -> None:
        iface = snap.by_tag.get(tap.tag)
        port = tap.port
        if iface is None:
            if not os.path.exists(port.netns):
                report.problems.append(f"port {port.ifname} of {port.container_id}: netns {port.netns} is gone")
                return
            net = desired.networks[port.network]
            if self._guard(report, f"re-creating {port.ifname} of {port.container_id}", self.attach, port, net):
                report.ports_recreated += 1
            return
        loop_sw = loops.get(tap.loopback)
        if loop_sw is None:
            return
        self._guard(
            report,
            f"port {port.ifname} of {port.container_id}",
            self._repair,
            iface,
            tap.table_id,
            loop_sw,
            snap,
            report,
        )

    def _repair(self, iface: Interface, table_id: int, loop_sw: int, snap: Snapshot, report: ReconcileReport) -> None:
        self._bind(iface.sw_if_index, table_id, loop_sw, snap, report, fresh=False)
        if not iface.up:
            self._exec(calls.admin_up(iface.sw_if_index), report)

    def _sync_tunnel(self, tun: plan.Tunnel, snap: Snapshot, loops: dict[str, int], report: ReconcileReport) -> None:
        iface, fresh = self._tunnels.ensure(tun, snap, report)
        self._bind(iface.sw_if_index, tun.table_id, loops[tun.loopback], snap, report, fresh=fresh)
        if not iface.up:
            self._exec(calls.admin_up(iface.sw_if_index), report)

    def _delete_owned(
        self, tag: str, iface: Interface, tunnels: dict[int, ActualTunnel], snap: Snapshot, report: ReconcileReport
    ) -> None:
        sw = iface.sw_if_index
        try:
            if tag.startswith(plan.PORT_TAG):
                self._exec(calls.tap_delete(sw), report, "")
                report.ports_removed += 1
            elif tag.startswith(plan.TUNNEL_TAG):
                have = tunnels.get(sw)
                if have is None:
                    report.problems.append(f"tunnel {tag}: VPP lists the interface but not the tunnel")
                    return
                self._exec(calls.vxlan_delete(have), report, "removed")
            else:
                self._exec(calls.delete_loopback(sw), report, "removed")
        except DataplaneError as exc:
            report.problems.append(f"removing {tag}: {exc}")
            return
        snap.interfaces.pop(sw, None)
        snap.unnumbered.pop(sw, None)

    def _sync_neighbours(self, want: plan.VppObjects, snap: Snapshot, report: ReconcileReport) -> None:
        sw_by_tag = {t: i.sw_if_index for t, i in snap.by_tag.items()}
        managed = {sw for t, sw in sw_by_tag.items() if t.startswith(plan.PORT_TAG)}
        if not managed:
            return
        changes = diff.neighbour_changes(want.neighbours.values(), actual.neighbours(self._api), sw_by_tag, managed)
        for old in changes.deletes:
            call = calls.neighbour(old.sw_if_index, old.address, old.mac, add=False)
            self._guard(report, "neighbour", self._exec, call, report, "removed")
        for neigh, sw in changes.adds:
            call = calls.neighbour(sw, neigh.address, neigh.mac, add=True)
            self._guard(report, "neighbour", self._exec, call, report)

    def _sync_routes(
        self, want: plan.VppObjects, snap: Snapshot, report: ReconcileReport, doomed: frozenset[int], *, adds: bool
    ) -> None:
        """Routes of every VRF in the agent's range. First pass (adds=False) only removes, before interfaces go;
        the second adds what is missing once every interface exists."""
        sw_by_tag = {t: i.sw_if_index for t, i in snap.by_tag.items()}
        owned_sw = {sw for t, sw in sw_by_tag.items() if t.startswith(OWNER_ALIAS_PREFIX)}
        existing = set(snap.interfaces)
        wanted: dict[tuple[int, bool], list[plan.Route]] = {}
        for route in want.routes.values():
            wanted.setdefault((route.table_id, route.prefix.version == 6), []).append(route)
        for table_id, is_ip6 in sorted(k for k in snap.tables if actual.owned_table(k[0])):
            have = actual.routes(self._api, table_id, is_ip6=is_ip6)
            changes = diff.route_changes(
                wanted.get((table_id, is_ip6), []), have, sw_by_tag, owned_sw, existing, doomed
            )
            for old in changes.deletes:
                call = calls.route_delete(table_id, old.prefix)
                self._guard(report, "route", self._exec, call, report, "removed")
            if not adds:
                continue
            report.problems.extend(changes.problems)
            for route, sw in changes.adds:
                self._guard(report, "route", self._exec, calls.route(route, sw, add=True), report)


def _validate(port: PortSpec) -> None:
    if len(port.netns.encode()) > NETNS_PATH_MAX:
        raise InvalidSpec(f"netns path {port.netns!r} is longer than VPP accepts ({NETNS_PATH_MAX} bytes)")
    if not port.ifname or len(port.ifname) > IFNAME_MAX:
        raise InvalidSpec(f"interface name {port.ifname!r} is not a valid Linux interface name")


def make_vpp_driver(*, api_dir: str | None = None, socket_path: str | None = None, uplink: str = "") -> VppDriver:
    """The driver over a real VPP; MULTINET_VPP_API_DIR / MULTINET_VPP_API_SOCKET override the defaults."""
    api_dir = api_dir or os.environ.get("MULTINET_VPP_API_DIR", DEFAULT_API_DIR)
    socket_path = socket_path or os.environ.get("MULTINET_VPP_API_SOCKET", DEFAULT_API_SOCKET)
    return VppDriver(functools.partial(PapiConnection.open, api_dir, socket_path), uplink=uplink)
