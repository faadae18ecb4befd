"""Prompt detection of shaped ports: a thread on the node's rtnetlink TC group.

A chained CNI plugin (bandwidth) adds its qdiscs right after multinet's ADD returns; from then on, whatever the
fast path forwards to or from that pod would bypass them. The thread sleeps in poll(2) on a socket subscribed
to qdisc notifications, wakes when the kernel announces a change, takes every notification already pending (a
plugin's few changes come together), and hands the devices they name to a callback, which re-reads their
qdiscs and moves each port off the fast path or back onto it. An overflowed socket (ENOBUFS: notifications
were lost) hands None instead: re-derive every port. The full resync re-derives everything anyway
(level-triggered); the thread only makes it prompt.

The thread runs in the network namespace of the thread that created the watcher (it enters it first): the
callback attaches and detaches programs by ifindex, which the kernel resolves in the calling thread's netns."""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
from collections.abc import Callable

from ..netlink import notify, tc
from ..netlink.netns import setns

log = logging.getLogger("multinet.vppagent.linux.fastpath")

Changed = set[int] | None  # ifindexes whose qdiscs changed; None: unknown, all of them


class QdiscWatch:
    def __init__(self, on_change: Callable[[Changed], None]) -> None:
        self._on_change = on_change
        self._netns = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self._sock: socket.socket | None = None
        self._wake: tuple[int, int] | None = None
        try:
            self._sock = sock = tc.subscribe()
            self._wake = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            args = (sock, self._wake[0])
            self._thread = threading.Thread(target=self._run, args=args, name="fastpath-qdisc-watch", daemon=True)
            self._thread.start()
        except BaseException:
            self._release()  # a failed start leaves nothing open
            raise

    def close(self) -> None:
        """Stop the thread (it finishes the change it may be handling) and release everything."""
        if self._wake is not None:  # else the constructor failed and released everything already
            os.write(self._wake[1], b"\0")
            self._thread.join()
            self._release()

    def _release(self) -> None:
        if self._sock is not None:
            self._sock.close()
        for fd in (*(self._wake or ()), self._netns):
            os.close(fd)

    def _run(self, sock: socket.socket, wake: int) -> None:
        setns(self._netns)
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        poller.register(wake, select.POLLIN)
        while True:
            ready = {fd for fd, _events in poller.poll()}
            if wake in ready:
                return
            try:
                changed = _drain(sock)
            except OSError:  # the socket itself broke: only full resyncs re-derive shaped ports from now on
                log.exception("fast path: the qdisc watcher stops")
                return
            if changed is None or changed:
                try:
                    self._on_change(changed)
                except Exception:  # the next notification or resync tries again; the thread must survive
                    log.exception("fast path: reacting to a qdisc change failed")


def _drain(sock: socket.socket) -> Changed:
    """Every notification pending: the devices they name, None if some were lost (ENOBUFS)."""
    messages, lost = notify.drain(sock)
    return None if lost else tc.announced(messages)
