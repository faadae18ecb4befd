"""The node agent: keeps the dataplane equal to the desired state.

Two inputs: the CNI fast path (attach/detach one port now, answered when ready) and netmgr's desired-state
stream (level-triggered: every update marks the state dirty; the reconcile loop converges the whole node, and
also runs periodically to repair drift). The dataplane is touched only from one thread, so driver calls never
race, and never reconciled before the stream's first snapshot (an agent that is not in sync removes nothing)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from multinet.v1 import agent_pb2, catalog_pb2
from opentelemetry import trace

from services.common.telemetry import tracer

from . import convert
from .drivers.base import AttachResult, Driver, ReconcileReport
from .errors import InvalidSpec, NetnsNotFound
from .model import DesiredNode, PortSpec
from .netns_guard import check_pod_netns
from .state import ClusterState, Key, desired_node

log = logging.getLogger("multinet.vppagent")
_tracer = tracer("multinet.vppagent")
T = TypeVar("T")
P = ParamSpec("P")
FAST_PATH_GRACE_S = 120.0  # how long a CNI-attached port may wait to show up in the desired state
DEBOUNCE_S = 0.02
FIRST_RETRY_S = 0.1
MAX_RETRY_S = 5.0


@dataclass(frozen=True, slots=True)
class AgentSettings:
    node: str
    underlay_ip: str = ""  # this node's VTEP address; "" = no tunnels (single node)
    resync_interval_s: float = 30.0

    def __post_init__(self) -> None:
        if self.underlay_ip:
            try:
                ipaddress.ip_address(self.underlay_ip)
            except ValueError:
                raise ValueError(f"--underlay-ip {self.underlay_ip!r} is not an IP address") from None
        if self.resync_interval_s <= 0:
            raise ValueError("--resync-interval must be positive")


@dataclass(frozen=True, slots=True)
class PodMac:
    """A pod side's MAC as the driver saw it, for the catalog."""

    netns: str
    mac: str
    since: float  # monotonic


class NodeAgent:
    def __init__(self, settings: AgentSettings, driver: Driver) -> None:
        self.settings = settings
        self.driver = driver
        self.state = ClusterState()
        self.applied_revision = 0
        self.last_report = ReconcileReport()
        self.default_mtu = 1450
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="dataplane")
        self._reaper = ThreadPoolExecutor(1, thread_name_prefix="reaper")
        self._fast: dict[Key, tuple[PortSpec, float]] = {}
        self._tombstones: dict[Key, float] = {}
        self._dirty = asyncio.Event()
        self.converged = asyncio.Event()
        # pod sides whose MAC is not their port's (a chained plugin set another), told by the driver's threads,
        # waiting to be reported to the catalog (macreport): the latest per port, with where and when it was seen
        self.pod_macs: dict[Key, PodMac] = {}
        self.pod_macs_changed = asyncio.Event()  # a report came in, or the state the reports wait for moved

    @property
    def in_sync(self) -> bool:
        return self.state.synced and self.converged.is_set()

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a driver call on the dataplane thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def start(self) -> None:
        await self._run(self.driver.prepare)
        loop = asyncio.get_running_loop()

        def told(key: Key, netns: str, mac: str) -> None:  # on a driver thread: hand over to the loop
            loop.call_soon_threadsafe(self._pod_mac_seen, key, netns, mac)

        await self._run(self.driver.report_pod_macs, told)
        underlay_v6 = bool(self.settings.underlay_ip) and ipaddress.ip_address(self.settings.underlay_ip).version == 6
        self.default_mtu = await self._run(self.driver.tunnel_mtu, underlay_v6)
        log.info(
            "agent ready",
            extra={"node": self.settings.node, "driver": self.driver.name, "default_mtu": self.default_mtu},
        )

    def _pod_mac_seen(self, key: Key, netns: str, mac: str) -> None:
        self.pod_macs[key] = PodMac(netns, mac.lower(), time.monotonic())
        self.pod_macs_changed.set()

    async def close(self) -> None:
        self._reaper.shutdown(wait=True)
        await self._run(self.driver.close)
        self._executor.shutdown(wait=True)

    # -------------------------------------------------------------------------------------------- fast path
    async def attach(self, iface: catalog_pb2.PodInterface, net_msg: catalog_pb2.Network) -> AttachResult:
        net = convert.network(net_msg, self.default_mtu)
        port = convert.port(iface, net)
        check_pod_netns(port.netns)
        self._tombstones.pop(port.key, None)
        self._fast[port.key] = (port, time.monotonic())
        try:
            return await self._run(self.driver.attach, port, net)
        except BaseException:
            self._fast.pop(port.key, None)
            raise

    async def detach(self, network: str, container_id: str, ifname: str, netns: str) -> bool:
        key = (network, container_id, ifname)
        self._fast.pop(key, None)
        self._tombstones[key] = time.monotonic()
        port = PortSpec(network, container_id, ifname, netns, (), (), 0)
        existed = await self._run(self.driver.detach, port)
        self._reaper.submit(self._finish_detach, port)  # the CNI DEL does not wait for the kernel's slow part
        return existed

    def _finish_detach(self, port: PortSpec) -> None:
        try:
            self.driver.finish_detach(port)
        except Exception:
            log.exception("deferred part of detach failed", extra={"port": port.key})

    async def check(self, iface: catalog_pb2.PodInterface, net_msg: catalog_pb2.Network) -> list[str]:
        net = convert.network(net_msg, self.default_mtu)
        port = convert.port(iface, net)
        if iface.mac:
            port = PortSpec(
                port.network,
                port.container_id,
                port.ifname,
                port.netns,
                port.ips,
                port.routes,
                iface.mtu or port.mtu,
                iface.mac,
            )
        return await self._run(self.driver.check, port, net)

    # -------------------------------------------------------------------------------------------- desired state
    def on_update(self, update: agent_pb2.DesiredStateUpdate) -> None:
        """Cheap: record the update and mark dirty; the reconcile loop does the work. An update that only
        confirms what the CNI fast path already did (our own ports attached or detached) needs no work."""
        confirms_fast_path = self._only_confirms_fast_path(update)
        self.state.apply(update)
        if self.pod_macs:  # a report may have waited for this record (or its new revision)
            self.pod_macs_changed.set()
        if confirms_fast_path:
            for iface in update.interfaces:
                self._fast.pop((iface.network, iface.container_id, iface.ifname), None)
            for gone in update.removed_interfaces:
                self._tombstones.pop((gone.network, gone.container_id, gone.ifname), None)
            self.applied_revision = max(self.applied_revision, self.state.revision)
            return
        self._dirty.set()

    def _only_confirms_fast_path(self, update: agent_pb2.DesiredStateUpdate) -> bool:
        if update.snapshot or update.networks or update.removed_networks or update.nodes or update.removed_nodes:
            return False
        if not self.converged.is_set() or self._dirty.is_set():
            return False
        attached = all((i.network, i.container_id, i.ifname) in self._fast for i in update.interfaces)
        detached = all((i.network, i.container_id, i.ifname) in self._tombstones for i in update.removed_interfaces)
        return attached and detached

    def desired(self) -> DesiredNode:
        desired = desired_node(self.state, self.settings.node, self.settings.underlay_ip, self.default_mtu)
        now = time.monotonic()
        for key, (port, since) in list(self._fast.items()):
            if key in self.state.interfaces or now - since > FAST_PATH_GRACE_S:
                del self._fast[key]
            else:
                desired.ports[key] = port
        for key, port in list(desired.ports.items()):
            try:
                check_pod_netns(port.netns)
            except InvalidSpec as exc:  # (a netns that is gone is the driver's to report: it may come back)
                log.error("refusing a port", extra={"port": key, "error": str(exc)})
                del desired.ports[key]
            except NetnsNotFound:
                pass
        for key, since in list(self._tombstones.items()):
            if key not in self.state.interfaces or now - since > FAST_PATH_GRACE_S:
                del self._tombstones[key]
            else:
                desired.ports.pop(key, None)
        return desired

    async def reconcile_loop(self) -> None:
        """Apply each change by difference; read the whole dataplane back at the first snapshot and on every
        resync interval (drift repair)."""
        last_full = -1.0
        failures_backoff = FIRST_RETRY_S
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), timeout=self.settings.resync_interval_s)
            if not self.state.synced:
                continue
            await asyncio.sleep(DEBOUNCE_S)  # let a burst of updates coalesce into one apply
            self._dirty.clear()
            full = last_full < 0 or time.monotonic() - last_full >= self.settings.resync_interval_s
            try:
                await self.reconcile_once(full=full)
            except Exception:
                # the loop must outlive any failure: not converged until an apply succeeds again, and the next
                # attempt reads the dataplane back in full (the driver's picture of it can no longer be trusted)
                log.exception("converging failed: retrying", extra={"full": full, "retry_in_s": failures_backoff})
                self.converged.clear()
                last_full = -1.0
                self._dirty.set()
                await asyncio.sleep(failures_backoff)
                failures_backoff = min(failures_backoff * 2, MAX_RETRY_S)
                continue
            failures_backoff = FIRST_RETRY_S
            if full:
                last_full = time.monotonic()

    async def reconcile_once(self, *, full: bool = True) -> ReconcileReport:
        revision = self.state.revision
        with _tracer.start_as_current_span("agent.reconcile" if full else "agent.apply") as span:
            desired = self.desired()
            converge = self.driver.reconcile if full else self.driver.apply
            report = await self._run(converge, desired)
            span.set_attributes(
                {
                    "agent.revision": revision,
                    "agent.ports": len(desired.ports),
                    "agent.remotes": len(desired.remotes),
                    "agent.changed": report.changed,
                }
            )
            if report.problems:
                span.set_status(trace.Status(trace.StatusCode.ERROR, report.problems[0]))
        self.applied_revision = revision
        self.last_report = report
        self.converged.set()
        if report.changed or report.problems:
            log.info(
                "converged",
                extra={
                    "revision": revision,
                    "full": full,
                    "added": report.added,
                    "removed": report.removed,
                    "ports_recreated": report.ports_recreated,
                    "ports_removed": report.ports_removed,
                    "problems": report.problems[:5],
                },
            )
        return report
