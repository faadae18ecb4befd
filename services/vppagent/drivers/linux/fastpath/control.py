"""The driver's side of the fast path: whether it is on, the loaded programs, the requests that attach them to a
device, and the read-back that repairs devices at full resync.

- Mode: the driver's option (`fastpath=True/False`), else MULTINET_FASTPATH=on|off|auto (auto: on when the
  kernel can load the program, probed once per process, else off with one log line). Default off for now: the
  clsact qdisc it needs on a pod's host veth makes a chained `bandwidth` plugin fail ("create ingress qdisc:
  file exists"), and a redirect into the pod would bypass the shaping such a plugin installs.
- Programs are loaded once per (role, table) and shared by every device of that network: attaching to a new
  port is then two netlink messages (clsact, filter) riding in the batch that configures the port anyway.
- Fast-path failures never fail what carried them: the routing path underneath forwards everything the
  programs do, so a port without its filter is slower, not broken. A kernel that turns out not to support the
  attach (no clsact/cls_bpf) switches the fast path off for the agent's lifetime, logged once.
- Ownership: filters are named FILTER_NAME at a fixed priority/handle; at resync a device whose filter is
  missing or runs other code (tag differs: an older agent's program, another table's) gets ours; with the fast
  path switched off by option, our filters are removed."""

from __future__ import annotations

import errno
import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ....errors import DataplaneError
from ....model import TABLE_BASE
from ..netlink import tc
from ..netlink.records import BpfFilter
from ..netlink.socket import NetlinkError, NetlinkSocket, Outcome, Request
from . import loader, programs
from .programs import Role

log = logging.getLogger("multinet.vppagent.linux.fastpath")

ENV = "MULTINET_FASTPATH"
FILTER_NAME = "multinet-fast"
FILTER_PRIORITY = 1
FILTER_HANDLE = 1
# the kernel cannot do it at all (no clsact / cls_bpf built, not permitted): stop trying
_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.ENOENT, errno.EPERM, errno.EINVAL})


@dataclass(frozen=True, slots=True)
class Device:
    """A device that should run a fast-path program: a pod's host-side veth or a network's tunnel."""

    name: str
    index: int
    table: int
    role: Role


@dataclass(slots=True)
class SyncResult:
    attached: int = 0
    removed: int = 0
    problems: list[str] = field(default_factory=list)


def wanted_mode(option: bool | None) -> bool | None:
    """True/False when forced (option first, then the environment), None for auto."""
    if option is not None:
        return option
    value = os.environ.get(ENV, "off").strip().lower()
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    return None


@functools.cache
def probe() -> str:
    """Empty when this kernel loads the forwarding program (bpf(2), SCHED_CLS, the FIB and redirect helpers, GPL),
    else why not. Once per process: the answer cannot change while it runs."""
    try:
        program = loader.load(programs.forward(TABLE_BASE, Role.PORT), "mnfpprobe")
    except (loader.BpfError, OSError) as exc:
        return str(exc)
    program.close()
    return ""


class FastPath:
    def __init__(self, option: bool | None = None) -> None:
        mode = wanted_mode(option)
        self._programs: dict[tuple[Role, int], loader.Program] = {}
        self._remove_ours = mode is False  # switched off on purpose: a resync takes our filters away
        self.enabled = False
        self.reason = "switched off" if mode is False else ""
        if mode is False:
            return
        reason = probe()
        if reason:
            if mode is True:
                raise DataplaneError(f"tc-BPF fast path required but unavailable: {reason}")
            _log_unavailable(reason)
            self.reason = reason
            return
        self.enabled = True

    def close(self) -> None:
        for program in self._programs.values():
            program.close()
        self._programs.clear()

    # ------------------------------------------------------------------------------------------------ programs
    def program(self, role: Role, table: int) -> loader.Program | None:
        key = (role, table)
        found = self._programs.get(key)
        if found is None and self.enabled:
            try:
                found = loader.load(programs.forward(table, role), programs.program_name(role, table))
            except (loader.BpfError, OSError) as exc:
                self._disable(str(exc))
                return None
            self._programs[key] = found
        return found

    def retain(self, tables: set[int]) -> None:
        """Close the programs of networks that are gone (filters keep their own reference while they exist)."""
        for key in [k for k in self._programs if k[1] not in tables]:
            self._programs.pop(key).close()

    # ------------------------------------------------------------------------------------------------ attach
    def requests(self, device: Device) -> list[Request]:
        """What attaches the program to `device` (idempotent; replaces another program); [] when off."""
        program = self.program(device.role, device.table) if self.enabled else None
        if program is None:
            return []
        return [
            tc.clsact_add(device.index, device.name),
            tc.bpf_filter(
                device.index,
                device.name,
                fd=program.fd,
                name=FILTER_NAME,
                priority=FILTER_PRIORITY,
                handle=FILTER_HANDLE,
            ),
        ]

    def settle(self, outcomes: Sequence[Outcome]) -> list[str]:
        """Failures of fast-path requests, as problems; a kernel that cannot attach at all turns it off."""
        problems = []
        for outcome in outcomes:
            if not outcome.error:
                continue
            text = str(NetlinkError(outcome.error, outcome.request.what, outcome.kernel_msg))
            if outcome.error in _UNSUPPORTED:
                self._disable(text)
            problems.append(f"fast path: {text}")
        return problems

    # ------------------------------------------------------------------------------------------------ read back
    def sync(self, sock: NetlinkSocket, devices: Sequence[Device]) -> SyncResult:
        """Full resync: every device runs our current program (or, switched off, none of ours)."""
        result = SyncResult()
        if not self.enabled and not self._remove_ours:
            return result
        reqs: list[Request] = []
        for device in devices:
            try:
                ours = [f for f in tc.ingress_filters(sock, device.index) if f.name == FILTER_NAME]
            except NetlinkError as exc:
                if exc.errno in (errno.ENODEV, errno.ENOENT):
                    continue  # the device went away meanwhile
                raise
            # ours elsewhere than where we attach (another layout of an older agent) never run: remove them too
            gone = [f for f in ours if not self.enabled or (f.priority, f.handle) != (FILTER_PRIORITY, FILTER_HANDLE)]
            reqs += [
                tc.bpf_filter_delete(device.index, device.name, priority=f.priority, handle=f.handle) for f in gone
            ]
            result.removed += len(gone)
            if self.enabled and not self._runs_current(device, ours):
                reqs += self.requests(device)
                result.attached += 1
        if reqs:
            result.problems += self.settle(sock.execute_all(reqs))
        return result

    def problem(self, sock: NetlinkSocket, device: Device) -> str:
        """CNI CHECK: "" when the device runs the current program (or the fast path is off)."""
        if not self.enabled:
            return ""
        ours = [f for f in tc.ingress_filters(sock, device.index) if f.name == FILTER_NAME]
        return "" if self._runs_current(device, ours) else f"fast-path filter missing or outdated on {device.name}"

    def _runs_current(self, device: Device, ours: list[BpfFilter]) -> bool:
        program = self.program(device.role, device.table)
        if program is None:
            return True  # nothing we could attach anyway
        return any(
            f.tag == program.tag and f.direct_action and (f.priority, f.handle) == (FILTER_PRIORITY, FILTER_HANDLE)
            for f in ours
        )

    def _disable(self, reason: str) -> None:
        if self.enabled:
            log.warning("tc-BPF fast path switched off, the routing path carries everything: %s", reason)
        self.enabled = False
        self.reason = reason


@functools.cache
def _log_unavailable(reason: str) -> None:
    """Once per process and reason, however many drivers start (tests and labs start several)."""
    log.warning("tc-BPF fast path unavailable, the routing path carries everything: %s", reason)
