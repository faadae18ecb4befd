"""The node's neighbour entries follow the MAC each pod side actually has (see `podmac` for why): what the driver
does with what the pod MAC watch sees, and with what a full resync reads back.

`MacFollower` knows every port's pod side as last seen (`PodLink`, by host veth), keeps exactly the pod netns with
ports of ours watched, and when a pod side announces a new MAC replaces the node's entries for its addresses and,
in the pod, the gateway neighbours the kernel flushed with the change.

Locking contract. The follower has no lock of its own: it runs under the driver's, an RLock the dataplane thread
holds for each of its calls (`attach` re-enters it from a resync, hence reentrant).
- The driver calls every method but `close` with that lock held, from the dataplane thread (or from whichever
  thread holds the lock).
- The watcher thread (`LinkWatch`'s) calls `_on_links`, which takes the lock for its whole run: it reads and
  updates the known pods, reads the driver's index, and reports what it applied to the driver's cache (the
  `applied` callback), all in turn with the dataplane thread. It sends through its own node-netns socket, never
  the dataplane thread's.
- `close` must be called without the lock: it joins the watcher thread, which may be waiting for it."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable

from ...model import DesiredNode, PortSpec
from . import plan, pod, requests
from .netlink import dumps
from .netlink.socket import NetlinkSocket
from .podmac import Links, LinkWatch, PodLink

log = logging.getLogger("multinet.vppagent.linux")
PortKey = tuple[str, str, str]  # PortSpec.key: (network, container id, ifname)


class MacFollower:
    def __init__(
        self,
        lock: threading.RLock,
        index: Callable[[], requests.Index],
        applied: Callable[[plan.HostObjects | None], None],
    ) -> None:
        """`lock`: the driver's (see the module's locking contract). `index`: the driver's current name → ifindex
        of the links it owns. `applied`: told, under the lock, of the neighbour entries the watcher replaced on its
        own (None: some failed, so the driver's cache of what is applied can no longer be trusted)."""
        self._lock = lock
        self._index = index
        self._applied = applied
        self._pods: dict[str, PodLink] = {}  # host veth → its pod side as last seen (the MAC it has)
        # told (under the lock, so it must not block) of every pod side whose MAC is not the one its port was
        # given: at each full resync, and when the watch sees one change (the agent reports it to the catalog)
        self.listener: Callable[[PortKey, str, str], None] | None = None  # (port key, pod netns, MAC)
        self._sock = NetlinkSocket()  # the watcher thread's own, in the node's netns
        self.watch = LinkWatch(self._on_links)

    def close(self) -> None:
        """Without the driver's lock (the watcher thread may be waiting for it); first, before the driver closes
        what the watcher may still use."""
        self.watch.close()
        self._sock.close()

    def macs(self) -> dict[str, str]:
        """The MAC each known pod side has, by host veth (for `plan.follow_macs`)."""
        return {name: p.mac for name, p in self._pods.items()}

    def watch_pod(self, netns: str) -> None:
        """Watch a pod's netns before reading its MAC: a change from then on is announced."""
        try:
            self.watch.open(netns)
        except OSError as exc:
            log.warning("pod MAC watch: %s not watched (%s): its MAC is followed at full resyncs only", netns, exc)

    def record_pod(self, port: PortSpec, link: dumps.Link) -> None:
        """A port's pod side as just read (its link in the pod netns)."""
        self._pods[port.host_ifname] = _pod_link(port, link)

    def forget_pod(self, host_ifname: str) -> None:
        known = self._pods.pop(host_ifname, None)
        if known is not None:
            self.unwatch_if_unused(known.netns)

    def unwatch_if_unused(self, netns: str) -> None:
        if all(p.netns != netns for p in self._pods.values()):
            self.watch.drop(netns)

    def follow(self, desired: DesiredNode, wanted: plan.HostObjects) -> None:
        """Level-triggered: the pod side of every port present, read back (one link dump per pod netns, after
        subscribing to it: nothing changes unseen in between); `wanted` points at the MACs found; every pod side
        gets its gateway neighbours re-asserted (create-or-replace: the kernel flushed them if the MAC changed
        unseen, and once the catalog records a changed MAC nothing else tells such a pod apart); exactly the pod
        netns with ports of ours are watched."""
        index = self._index()
        by_netns: dict[str, list[PortSpec]] = {}
        for port in desired.ports.values():
            if port.host_ifname in wanted.ports and port.host_ifname in index:
                by_netns.setdefault(port.netns, []).append(port)
        found: dict[str, PodLink] = {}
        for netns, pod_ports in by_netns.items():
            try:
                self.watch.open(netns)
                with NetlinkSocket(netns) as sock:
                    links = {link.name: link for link in dumps.links(sock)}
                    present = []
                    for port in pod_ports:
                        link = links.get(port.ifname)
                        if link is not None and link.peer_index == index[port.host_ifname] and link.mac:
                            found[port.host_ifname] = known = _pod_link(port, link)
                            present.append(known)
                    _repair_pod_side(sock, present)
                    for port in pod_ports:
                        seen = found.get(port.host_ifname)
                        if seen is not None and seen.mac != port.pod_mac:
                            self._tell(port.key, netns, seen.mac)
            except FileNotFoundError:  # gone: its port is re-created or reported (and its watch let go)
                continue
            except OSError as exc:  # not read this time: what was known stays (never back to the spec's MAC)
                log.warning("pod MACs in %s not read: %s", netns, exc)
                names = {port.host_ifname for port in pod_ports}
                found.update({name: p for name, p in self._pods.items() if name in names and p.netns == netns})
        self._pods = found
        for netns in self.watch.netns() - {p.netns for p in found.values()}:
            self.watch.drop(netns)
        plan.follow_macs(wanted, self.macs())

    def _on_links(self, netns: str, links: Links) -> None:
        """The watcher thread: `netns` announced these MACs by ifindex (None: maybe any changed). A port of ours
        whose pod side has a new one gets its node-side neighbour entries replaced and, in the pod, the gateway
        neighbours the kernel flushed with the change."""
        with self._lock:
            ours = {name: p for name, p in self._pods.items() if p.netns == netns}
            if not ours:
                return
            if links is None:
                with NetlinkSocket(netns) as sock:
                    links = {link.index: link.mac for link in dumps.links(sock)}
            objects = plan.HostObjects()
            moved, news = [], []
            for name, known in ours.items():
                mac = links.get(known.index, "")
                if not mac or mac == known.mac:
                    continue
                self._pods[name] = dataclasses.replace(known, mac=mac)
                moved.append(known)
                news.append((known.key, known.netns, mac))
                for ip in known.ips:
                    objects.add_neighbour(plan.NeighObj(name, ip, mac))
                log.info("pod side of %s (in %s) changed its MAC to %s: its neighbour entries follow", name, netns, mac)
            if not moved:
                return
            failed = [o for o in self._sock.execute_all(requests.adds(objects, self._index())) if o.error]
            if failed:  # the next apply reads the kernel back and repairs
                log.warning("following a pod MAC failed: %s", "; ".join(str(o.request.what) for o in failed))
            self._applied(None if failed else objects)
            try:
                with NetlinkSocket(netns) as sock:
                    _repair_pod_side(sock, moved)
            except OSError as exc:  # the pod is going away, or the next full resync re-asserts them
                log.warning("gateway neighbours in %s not re-added: %s", netns, exc)
            for key, pod_netns, mac in news:  # the node side is done: now the agent may tell the catalog
                self._tell(key, pod_netns, mac)

    def _tell(self, key: PortKey, netns: str, mac: str) -> None:
        if self.listener is not None:
            try:
                self.listener(key, netns, mac)
            except Exception:  # a listener's failure must not stop the dataplane's own work
                log.exception("pod MAC listener failed")


def _repair_pod_side(sock: NetlinkSocket, tuned: list[PodLink]) -> None:
    """The gateway neighbours of pod sides whose MAC changed (the kernel flushed them with the change)."""
    reqs = [req for p in tuned for req in pod.gateway_neighbours(p.index, p.ifname, {ip.version for ip in p.ips})]
    for outcome in sock.execute_all(reqs):
        if outcome.error:
            log.warning("re-adding a pod's gateway: %s: %s", outcome.request.what, os.strerror(outcome.error))


def _pod_link(port: PortSpec, link: dumps.Link) -> PodLink:
    return PodLink(port.netns, port.ifname, link.index, link.mac, tuple(ip.ip for ip in port.ips), port.key)
