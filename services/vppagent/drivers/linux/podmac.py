"""Following the pod side's MAC: the node's neighbour entry for a pod address is static (no ARP), so when a
chained plugin (`tuning` with `"mac"`) changes the pod interface's MAC after multinet's ADD, the node must point
its entries at the new MAC or the pod drops everything sent to it (PACKET_OTHERHOST). The same change makes the
kernel flush the pod interface's own neighbours, permanent ones included: the link-local gateway's static entry
must be put back too, or the pod cannot answer (it would ARP for a gateway nobody answers for).

`LinkWatch` holds one rtnetlink socket per pod netns with ports of ours, each opened inside that netns and
subscribed to its link notifications (RTMGRP_LINK); one thread sleeps in poll(2) on all of them and a wake pipe,
takes every notification pending on a socket that has some, and hands the (ifindex → MAC) it read to a callback,
None when the socket overflowed (ENOBUFS: notifications were lost, re-read the whole netns). The driver's full
resync reads every pod's MAC anyway (level-triggered); the thread only makes it prompt.

A socket keeps its netns alive: a pod netns whose path disappears (its runtime deleted it) is only freed once the
watch is dropped — at the port's detach, or at the next full resync, which drops watches whose path is gone or
names another netns now. Sockets are closed by the thread itself (it may be polling them), or by `close`."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .netlink import codec, notify
from .netlink.constants import IFLA_ADDRESS, RTM_NEWLINK
from .netlink.netns import socket_in
from .netlink.records import IPAddress

log = logging.getLogger("multinet.vppagent.linux")

RTMGRP_LINK = 0x1  # the legacy group bitmask of link notifications (RTNLGRP_LINK = 1)
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change

Links = dict[int, str] | None  # ifindex → MAC announced; None: unknown, re-read all of them


@dataclass(frozen=True, slots=True)
class PodLink:
    """A port's pod side as last seen: where it lives, its name and ifindex there, the MAC it has, the addresses
    the node's neighbour entries map to that MAC."""

    netns: str
    ifname: str
    index: int
    mac: str
    ips: tuple[IPAddress, ...]
    key: tuple[str, str, str]  # its port's (network, container id, ifname)


def link_address(msg: codec.Message) -> tuple[int, str] | None:
    """(ifindex, MAC) of an RTM_NEWLINK that carries a hardware address; None for anything else."""
    if msg.kind != RTM_NEWLINK or len(msg.payload) < _IFINFOMSG.size:
        return None
    index = _IFINFOMSG.unpack_from(msg.payload)[2]
    raw = codec.parse_attrs(msg.payload, _IFINFOMSG.size).get(IFLA_ADDRESS)
    if not raw:
        return None
    return index, ":".join(f"{b:02x}" for b in raw)


def subscribe() -> socket.socket:
    """A non-blocking rtnetlink socket, in the calling thread's netns, receiving link notifications."""
    return notify.subscribe(RTMGRP_LINK)


def netns_identity(path: str) -> tuple[int, int]:
    """Which netns a path names now (device and inode of the nsfs file); FileNotFoundError when none."""
    st = os.stat(path)
    return st.st_dev, st.st_ino


@dataclass(frozen=True, slots=True)
class _Watched:
    sock: socket.socket
    identity: tuple[int, int]


class LinkWatch:
    """Thread-safe: `open`/`drop` from the driver's thread, `on_links` called on the watcher's own thread (never
    with this watch's lock held, so the callback may open and drop watches)."""

    def __init__(self, on_links: Callable[[str, Links], None]) -> None:
        self._on_links = on_links
        self._lock = threading.Lock()
        self._watched: dict[str, _Watched] = {}  # netns path → its socket
        self._retired: list[socket.socket] = []  # dropped, for the thread to unregister and close
        self._stopping = False
        self._wake = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            self._thread = threading.Thread(target=self._run, name="pod-mac-watch", daemon=True)
            self._thread.start()
        except BaseException:
            for fd in self._wake:
                os.close(fd)
            raise

    def netns(self) -> set[str]:
        with self._lock:
            return set(self._watched)

    def open(self, netns: str) -> None:
        """Watch `netns` (idempotent; a path that names another netns than the watched one is watched anew).
        Raises OSError (FileNotFoundError: the path is gone, and so is its watch)."""
        try:
            identity = netns_identity(netns)
        except OSError:
            self.drop(netns)
            raise
        with self._lock:
            current = self._watched.get(netns)
            if current is not None and current.identity == identity:
                return
        sock = socket_in(netns, subscribe)
        with self._lock:
            if self._stopping:
                sock.close()
                return
            old = self._watched.pop(netns, None)
            if old is not None:
                self._retired.append(old.sock)
            self._watched[netns] = _Watched(sock, identity)
        self._poke()

    def drop(self, netns: str) -> None:
        with self._lock:
            old = self._watched.pop(netns, None)
            if old is None:
                return
            self._retired.append(old.sock)
        self._poke()

    def close(self) -> None:
        """Stop the thread (it finishes the callback it may be running) and close everything."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        self._poke()
        self._thread.join()
        with self._lock:
            for sock in [*self._retired, *(w.sock for w in self._watched.values())]:
                sock.close()
            self._retired.clear()
            self._watched.clear()
        for fd in self._wake:
            os.close(fd)

    def _poke(self) -> None:
        with contextlib.suppress(BlockingIOError):  # the pipe is full: the thread has wake-ups pending anyway
            os.write(self._wake[1], b"\0")

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._wake[0], select.POLLIN)
        polled: dict[int, tuple[str, socket.socket]] = {}  # fd → (netns, socket)
        while True:
            with self._lock:
                if self._stopping:
                    return
                self._sync(poller, polled)
            for fd, _events in poller.poll():
                if fd == self._wake[0]:
                    _empty(fd)
                elif fd in polled:
                    self._take(*polled[fd])

    def _sync(self, poller: select.poll, polled: dict[int, tuple[str, socket.socket]]) -> None:
        """Poll exactly the watched sockets; close the dropped ones (under the lock)."""
        for sock in self._retired:
            if sock.fileno() in polled:
                poller.unregister(sock.fileno())
                del polled[sock.fileno()]
            sock.close()
        self._retired.clear()
        for netns, watched in self._watched.items():
            if watched.sock.fileno() not in polled:
                poller.register(watched.sock, select.POLLIN)
                polled[watched.sock.fileno()] = (netns, watched.sock)

    def _take(self, netns: str, sock: socket.socket) -> None:
        try:
            links = _drain(sock)
        except OSError:  # this socket broke: that netns is followed by full resyncs only, until it is reopened
            log.exception("pod MAC watch: the socket of %s failed", netns)
            with self._lock:
                current = self._watched.get(netns)
                if current is not None and current.sock is sock:
                    del self._watched[netns]
                    self._retired.append(sock)
            return
        if links is None or links:
            try:
                self._on_links(netns, links)
            except Exception:  # the next notification or resync tries again; the thread must survive
                log.exception("pod MAC watch: following the links of %s failed", netns)


def _drain(sock: socket.socket) -> Links:
    """Every notification pending: the MACs they announce by ifindex, None if some were lost (ENOBUFS)."""
    messages, lost = notify.drain(sock)
    if lost:
        return None
    return dict(found for found in map(link_address, messages) if found is not None)


def _empty(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):
        while os.read(fd, 512):
            pass
