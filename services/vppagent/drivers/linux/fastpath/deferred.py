"""Attachments off the caller's path: a thread that attaches and forgets devices in the background.

Attaching a program to a device's tcx hook costs an RCU grace period (~10 ms measured here: the kernel publishes
the hook's new program array and waits for readers of the old one before it frees it) and holds the RTNL lock
meanwhile, so every other netlink change on the node waits too. A CNI ADD must not wait for an optimisation,
neither its own nor the previous pod's: the thread holds requests back until they stop coming for `quiet_s`
(a burst of ADDs first, then the attachments), but never longer than `max_delay_s` after the oldest one (a
steady stream of ADDs still gets its fast path). Until the program is on, the device's packets take the routing
path, which forwards them just the same. Requests for one device coalesce (the last one wins: an attach followed
by a forget is a forget), and everything held back is handled as one batch.

The thread is created by, and so starts in the network namespace of, the thread that makes the queue: tcx
resolves ifindexes in the calling thread's namespace."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger("multinet.vppagent.linux.fastpath")

T = TypeVar("T")


class Deferred(Generic[T]):
    """Requests by ifindex: a device to attach, or None to forget it."""

    def __init__(
        self,
        handle: Callable[[dict[int, T | None]], None],
        quiet_s: float = 0.05,
        max_delay_s: float = 1.0,
    ) -> None:
        self._handle = handle
        self._quiet_s, self._max_delay_s = quiet_s, max_delay_s
        self._first_put = self._last_put = 0.0  # time.monotonic() of the oldest and newest pending request
        self._hurry = False  # someone waits in settle(): no holding back
        self._pending: dict[int, T | None] = {}
        self._in_hand: set[int] = set()  # the batch being handled
        self._stopped = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="fastpath-attach", daemon=True)
        self._thread.start()

    def put(self, index: int, item: T | None) -> None:
        with self._cond:
            self._last_put = time.monotonic()
            if not self._pending:
                self._first_put = self._last_put
            self._pending[index] = item
            self._cond.notify_all()

    def busy_with(self, index: int) -> bool:
        """Whether a request for this device is still waiting or being handled."""
        with self._cond:
            return index in self._pending or index in self._in_hand

    def settle(self, timeout: float) -> bool:
        """Wait until everything requested so far is handled; False on timeout."""
        with self._cond:
            self._hurry = True
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: not self._pending and not self._in_hand, timeout)
            finally:
                self._hurry = False

    def close(self) -> None:
        """Stop the thread; requests not handled yet are dropped (the next full resync converges them)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending) or self._stopped)
                self._hold_back()
                if self._stopped:
                    return
                batch, self._pending = self._pending, {}
                self._in_hand = set(batch)
            try:
                self._handle(batch)
            except Exception:  # the next request or resync tries again; the thread must survive
                log.exception("fast path: background attach failed")
            finally:
                with self._cond:
                    self._in_hand = set()
                    self._cond.notify_all()

    def _hold_back(self) -> None:
        """With the condition held: wait while requests keep coming (see the module's docstring)."""
        while not self._stopped and not self._hurry:
            due = min(self._last_put + self._quiet_s, self._first_put + self._max_delay_s)
            left = due - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)
