"""The driver's side of the fast path: whether it is on, the loaded programs and the shaped-ports map, attaching
to devices with tcx, keeping shaping intact, and the read-back that repairs devices at full resync.

- Mode: the driver's option (`fastpath=True/False`), else MULTINET_FASTPATH=on|off|auto, default auto: on when
  the kernel can load the program and has tcx hooks (probed once per process), else off with one log line.
- Programs are loaded once per (role, table) and shared by every device of that network; attaching one to a
  new port is one bpf(2) call (a query first: attaching is idempotent), made in the background (`deferred`: it
  waits for an RCU grace period, ~10 ms, which a CNI ADD does not wait for; until then the routing path carries
  the port's packets). Full resyncs and CNI CHECK work in the caller's thread.
- Shaped ports: a pod port whose host veth carries a qdisc the kernel did not put there (a chained bandwidth
  plugin's ingress qdisc + mirred to its ifb, its root tbf) keeps the kernel's path both ways: no program of
  ours on its host veth (its egress traffic meets the plugin's ingress qdisc), and its ifindex in the shaped
  map, which every program consults before `bpf_redirect_peer` (traffic to it goes through the host veth and
  its tbf). A watcher thread (`watch`) applies qdisc changes as the kernel announces them; every full resync
  re-derives it from a qdisc dump. A port whose foreign qdiscs go away returns to the fast path.
- Fast-path failures never fail what carried them: the routing path underneath forwards everything the
  programs do, so a device without its program is slower, not broken. A kernel that turns out unable to attach
  switches the fast path off for the agent's lifetime, logged once.
- Ownership: programs named OWNER_PREFIX... are ours. A device should run exactly one of them: the one this
  process loaded, compared by program id, not by tag. Tags leave map references out, so an earlier agent's
  program has the same tag as ours but consults that agent's map, which nobody updates any more. At resync such
  programs are replaced in place (BPF_F_REPLACE: no packet misses a program); with the same code that is a
  restart's hand-over, reported as `adopted`, not as a change; other code (an older agent version's, another
  table's) counts as a repair. Chosen over pinning the map in bpffs: nothing to mount, nothing left behind when
  a node namespace disappears, and the kernel frees the old map with the last program that uses it. Until the
  first resync after a restart, the old programs on devices the new agent has not touched yet still consult
  the old map (a port shaped in that window is kept out of redirects only once the resync runs).
  Switched off by option, a resync removes ours."""

from __future__ import annotations

import errno
import functools
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from ....errors import DataplaneError
from ....model import TABLE_BASE
from ..netlink import tc
from ..netlink.socket import NetlinkSocket
from . import loader, maps, programs, tcx
from .deferred import Deferred
from .programs import Role
from .syscall import BpfError
from .watch import Changed, QdiscWatch

log = logging.getLogger("multinet.vppagent.linux.fastpath")

ENV = "MULTINET_FASTPATH"
OWNER_PREFIX = "mnfp"  # the ownership mark: every program the fast path loads is named mnfp<role><table>
SHAPED_MAP_NAME = "mnfp_shaped"
LOOPBACK_IFINDEX = 1
# the kernel cannot do it at all (no tcx, not permitted): stop trying
_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.EPERM, errno.EINVAL})
_GONE = frozenset({errno.ENODEV, errno.ENOENT})  # the device (or a program) went away meanwhile
_TRANSIENT = frozenset({errno.ENOMEM, errno.EAGAIN, errno.EINTR})  # a load may work next time


@dataclass(frozen=True, slots=True)
class Device:
    """A device that should run a fast-path program: a pod's host-side veth or a network's tunnel."""

    name: str
    index: int
    table: int
    role: Role


@dataclass(slots=True)
class SyncResult:
    attached: int = 0  # devices given our program (none there, or other code)
    removed: int = 0  # programs of ours taken away (extra ones, on shaped ports, switched off)
    adopted: int = 0  # an earlier process's copy of the same code replaced by ours (see the module's docstring)
    problems: list[str] = field(default_factory=list)


def wanted_mode(option: bool | None) -> bool | None:
    """True/False when forced (option first, then the environment), None for auto."""
    if option is not None:
        return option
    value = os.environ.get(ENV, "auto").strip().lower()
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    if value in ("", "auto"):
        return None
    raise ValueError(f"{ENV}={value!r}: expected on, off or auto")


@functools.cache
def probe() -> str:
    """Empty when this kernel loads the forwarding program (bpf(2), SCHED_CLS, hash maps, the FIB and redirect
    helpers, GPL) and has tcx hooks (a read-only query of lo's), else why not. Once per process: the answer
    cannot change while it runs."""
    try:
        shaped = maps.IfindexSet.create(SHAPED_MAP_NAME)
        try:
            loader.load(programs.forward(TABLE_BASE, Role.PORT, shaped.fd), "mnfpprobe").close()
        finally:
            shaped.close()
        tcx.query(LOOPBACK_IFINDEX)
    except (BpfError, OSError) as exc:
        return str(exc)
    return ""


class FastPath:
    """Thread-safe: the dataplane thread, the background attacher and the qdisc watcher's thread all change
    attachments, under one lock."""

    def __init__(self, option: bool | None = None) -> None:
        mode = wanted_mode(option)
        self._lock = threading.RLock()
        self._programs: dict[tuple[Role, int], loader.Program] = {}
        self._devices: dict[int, Device] = {}  # by ifindex: every device we put (or keep) a program on
        self._shaped: set[int] = set()  # ports with foreign qdiscs: in the map, none of our programs on them
        self._map: maps.IfindexSet | None = None
        self._watch: QdiscWatch | None = None
        self._watch_sock: NetlinkSocket | None = None  # the watcher thread's own socket for qdisc dumps
        self._deferred: Deferred[Device] | None = None
        self._remove_ours = mode is False  # switched off on purpose: a resync takes our programs away
        self.enabled = False
        self.reason = "switched off" if mode is False else ""
        if mode is False:
            return
        reason = probe() or self._start()
        if reason:
            if mode is True:
                raise DataplaneError(f"tc-BPF fast path required but unavailable: {reason}")
            _log_unavailable(reason)
            self.reason = reason
            return
        self.enabled = True

    def _start(self) -> str:
        try:
            self._map = maps.IfindexSet.create(SHAPED_MAP_NAME)
            self._watch_sock = NetlinkSocket()
            self._watch = QdiscWatch(self._on_qdiscs)
            self._deferred = Deferred(self._handle_deferred)
        except OSError as exc:
            self.close()
            return str(exc)
        return ""

    def close(self) -> None:
        # the threads first, outside the lock: they may be waiting for it
        if self._deferred is not None:
            self._deferred.close()
            self._deferred = None
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        with self._lock:
            for program in self._programs.values():
                program.close()
            self._programs.clear()
            if self._map is not None:
                self._map.close()  # attached programs keep the map itself alive
                self._map = None
            if self._watch_sock is not None:
                self._watch_sock.close()
                self._watch_sock = None

    @property
    def map_id(self) -> int:
        return self._map.map_id if self._map is not None else 0

    # ------------------------------------------------------------------------------------------------ programs
    def _program(self, device: Device) -> loader.Program | None:
        """Our program for the device's network and role (loaded once); None when switched off. A load refused
        for want of memory or time is raised for the caller to report, and the next attempt loads again; any
        other refusal (the verifier's, permissions) would come every time: it switches the fast path off."""
        key = (device.role, device.table)
        found = self._programs.get(key)
        if found is None and self.enabled and self._map is not None:
            name = programs.program_name(device.role, device.table)
            try:
                found = loader.load(programs.forward(device.table, device.role, self._map.fd), name)
            except BpfError as exc:
                if exc.errno in _TRANSIENT:
                    raise
                self._disable(str(exc))
                return None
            self._programs[key] = found
        return found

    def retain(self, tables: set[int]) -> None:
        """Close the programs of networks that are gone (attachments keep their own reference while they exist)."""
        with self._lock:
            for key in [k for k in self._programs if k[1] not in tables]:
                self._programs.pop(key).close()

    # ------------------------------------------------------------------------------------------------ attach
    def attach(self, device: Device) -> None:
        """Put our program on `device` soon, in the background (problems are logged there)."""
        if self.enabled and self._deferred is not None:
            self._deferred.put(device.index, device)

    def forget(self, index: int) -> None:
        """A port going away (its device is deleted with whatever hangs on it): off the books and the map, in the
        background like attaching (which a forget cancels)."""
        if self._deferred is not None:
            self._deferred.put(index, None)

    def settle(self, timeout: float = 5.0) -> bool:
        """Wait for the background attachments asked for so far (tests, benchmarks); False on timeout."""
        return self._deferred is None or self._deferred.settle(timeout)

    def attach_now(self, device: Device) -> list[str]:
        """Put our program on `device` in this thread (idempotent; replaces another program of ours); problems,
        if any."""
        with self._lock:
            if not self.enabled:
                return []
            self._devices[device.index] = device
            result = SyncResult()
            if device.index not in self._shaped:
                self._converge(device, result)
            return result.problems

    def forget_now(self, index: int) -> None:
        with self._lock:
            self._devices.pop(index, None)
            if index in self._shaped:
                self._set_shaped(self._shaped - {index})

    def _handle_deferred(self, batch: dict[int, Device | None]) -> None:
        """The background thread: forget what went away, then attach the new devices. A chained plugin may have
        shaped a new port before this runs, announced while the port was not on the books yet: their qdiscs are
        read here first."""
        for index in [i for i, device in batch.items() if device is None]:
            self.forget_now(index)
        devices = [device for device in batch.values() if device is not None]
        problems: list[str] = []
        with self._lock:
            ports = {d.index for d in devices if d.role is Role.PORT}
            if ports and self.enabled and self._watch_sock is not None:
                try:
                    self._set_shaped((self._shaped - ports) | (tc.shaped(tc.qdiscs(self._watch_sock)) & ports))
                except OSError as exc:  # BpfError included: the next full resync reads the qdiscs again
                    problems.append(f"fast path: shaped ports not read: {exc}")
        for device in devices:  # the lock per device: the dataplane thread's apply waits for one attach at most
            problems += self.attach_now(device)
        for problem in problems:
            log.warning("%s", problem)

    # ------------------------------------------------------------------------------------------------ read back
    def sync(self, sock: NetlinkSocket, devices: Sequence[Device]) -> SyncResult:
        """Full resync: which ports are shaped, from the kernel's qdiscs; then every device runs our current
        program, or none of ours when shaped (or when switched off)."""
        result = SyncResult()
        with self._lock:
            if not self.enabled and not self._remove_ours:
                return result
            if self.enabled:
                self._devices = {d.index: d for d in devices}
                ports = {d.index for d in devices if d.role is Role.PORT}
                try:
                    self._set_shaped(tc.shaped(tc.qdiscs(sock)) & ports)
                except BpfError as exc:
                    self._failed(exc, result)
            for device in devices:
                self._converge(device, result)
            if not self.enabled and not result.problems:
                self._remove_ours = False  # swept clean: none of ours can appear while switched off
        if result.adopted:
            log.info("fast path: took over %d devices from an earlier agent's programs", result.adopted)
        return result

    def problem(self, sock: NetlinkSocket, device: Device) -> str:
        """CNI CHECK: "" when the device runs what it should: our current program, or none of ours if shaped (or
        a background attach for it is still on its way)."""
        if self._deferred is not None and self._deferred.busy_with(device.index):
            return ""
        with self._lock:
            if not self.enabled:
                return ""
            try:
                ids = tcx.query(device.index)
                if device.role is Role.PORT and device.index in tc.shaped(tc.qdiscs(sock)):
                    stale = self._ours(ids)
                    found = bool(stale)  # before closing: _close_all empties the list
                    _close_all(stale)
                    return f"fast-path program on {device.name}, which is shaped" if found else ""
                program = self._program(device)
            except BpfError as exc:  # the device went away (its CHECK says so elsewhere), or the kernel refused
                return "" if exc.errno in _GONE else f"fast path on {device.name}: {exc}"
            if program is None or program.prog_id in ids:
                return ""
            return f"fast-path program missing or outdated on {device.name}"

    # ------------------------------------------------------------------------------------------------ shaping
    def _on_qdiscs(self, changed: Changed) -> None:
        """The watcher thread: qdiscs changed on `changed` (None: maybe anywhere); re-derive those ports."""
        result = SyncResult()
        with self._lock:
            if not self.enabled or self._watch_sock is None:
                return
            ports = {i for i, d in self._devices.items() if d.role is Role.PORT}
            targets = ports if changed is None else ports & changed
            if not targets:
                return
            shaped = tc.shaped(tc.qdiscs(self._watch_sock)) & targets
            flipped = shaped ^ (self._shaped & targets)
            self._set_shaped((self._shaped - targets) | shaped)
            for index in sorted(flipped):
                device = self._devices[index]
                self._converge(device, result)
                state = "shaped: off the fast path" if index in shaped else "no longer shaped: back on the fast path"
                log.info("fast path: port %s %s", device.name, state)
        for problem in result.problems:
            log.warning("%s", problem)

    def _set_shaped(self, shaped: set[int]) -> None:
        """Bring the map in line with `shaped`. Callers do this before converging the ports' own programs, so a
        port that becomes shaped leaves the redirects as soon as the kernel announced its qdiscs."""
        if self._map is None:
            return
        for index in shaped - self._shaped:
            self._map.add(index)
        for index in self._shaped - shaped:
            self._map.discard(index)
        self._shaped = set(shaped)

    # ------------------------------------------------------------------------------------------------ converge
    def _converge(self, device: Device, result: SyncResult) -> None:
        """Make `device` run exactly our current program (none of ours when shaped or switched off)."""
        try:
            wanted = self._program(device) if self.enabled and device.index not in self._shaped else None
            ids = tcx.query(device.index)
            stale = self._ours([i for i in ids if wanted is None or i != wanted.prog_id])
        except BpfError as exc:
            if exc.errno in _GONE or (not self.enabled and exc.errno in _UNSUPPORTED):
                return  # gone meanwhile; or no tcx at all, so nothing of ours can be there
            self._failed(exc, result)
            return
        try:
            if wanted is not None and wanted.prog_id not in ids:
                self._put(device, wanted, stale.pop(0) if stale else None, result)
            for fd, _info in stale:
                tcx.detach(device.index, fd)
                result.removed += 1
        except BpfError as exc:
            if exc.errno not in _GONE:
                self._failed(exc, result)
        finally:
            _close_all(stale)

    def _put(
        self, device: Device, wanted: loader.Program, old: tuple[int, loader.ProgInfo] | None, result: SyncResult
    ) -> None:
        if old is None:
            tcx.attach(device.index, wanted.fd)
            result.attached += 1
            return
        fd, info = old
        try:
            tcx.attach(device.index, wanted.fd, replace_fd=fd)
        finally:
            os.close(fd)
        if info.tag == wanted.tag:
            result.adopted += 1
        else:
            result.attached += 1

    def _ours(self, ids: Sequence[int]) -> list[tuple[int, loader.ProgInfo]]:
        """Open the programs among `ids` that are ours by name (fds for the caller to close)."""
        found: list[tuple[int, loader.ProgInfo]] = []
        for prog_id in ids:
            try:
                fd = loader.fd_by_id(prog_id)
            except BpfError as exc:
                if exc.errno == errno.ENOENT:
                    continue  # detached and freed meanwhile
                _close_all(found)
                raise
            try:
                info = loader.info(fd)
            except BpfError:
                os.close(fd)
                _close_all(found)
                raise
            if info.name.startswith(OWNER_PREFIX):
                found.append((fd, info))
            else:
                os.close(fd)
        return found

    def _failed(self, exc: BpfError, result: SyncResult) -> None:
        if exc.errno in _UNSUPPORTED:
            self._disable(str(exc))
        result.problems.append(f"fast path: {exc}")

    def _disable(self, reason: str) -> None:
        """Off for good: the next full resync takes our programs away (left on, they would go on redirecting
        by a shaped-ports map nobody keeps up to date any more)."""
        if self.enabled:
            log.warning("tc-BPF fast path switched off, the routing path carries everything: %s", reason)
        self.enabled = False
        self._remove_ours = True
        self.reason = reason


def _close_all(opened: list[tuple[int, loader.ProgInfo]]) -> None:
    for fd, _info in opened:
        os.close(fd)
    opened.clear()


@functools.cache
def _log_unavailable(reason: str) -> None:
    """Once per process and reason, however many drivers start (tests and labs start several)."""
    log.warning("tc-BPF fast path unavailable, the routing path carries everything: %s", reason)
