"""The fast path's control logic against a fake kernel (tcx hooks, program ids, qdiscs, the shaped-ports map):
mode selection, the unavailable kernel (routing path only, logged once), one program per device, the resync's
repairs and hand-over, shaped ports kept off, which failures switch it off, and no fd left open. The real kernel
runs the same code in tests/netns/test_linux_fastpath.py."""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from services.vppagent.drivers.linux.fastpath import control, loader, maps, tcx
from services.vppagent.drivers.linux.fastpath.asm import Insn
from services.vppagent.drivers.linux.fastpath.control import Device, FastPath
from services.vppagent.drivers.linux.fastpath.programs import Role
from services.vppagent.drivers.linux.fastpath.syscall import BpfError
from services.vppagent.drivers.linux.fastpath.watch import Changed
from services.vppagent.drivers.linux.netlink import tc
from services.vppagent.drivers.linux.netlink.records import Qdisc
from services.vppagent.drivers.linux.netlink.socket import NetlinkSocket
from services.vppagent.errors import DataplaneError
from tests.fixtures.poll import wait_for

TABLE = 0x100004D2
PORT = Device("mnabc", 7, TABLE, Role.PORT)
PORT2 = Device("mndef", 8, TABLE, Role.PORT)
TUNNEL = Device("mnvx1234", 9, TABLE, Role.TUNNEL)
SOCK = NetlinkSocket.__new__(NetlinkSocket)  # never used: the fake qdisc dump ignores it


@dataclass
class FakeKernel:
    """Programs by id with name and tag, the ids on each device's tcx ingress in order, the qdiscs, the map.
    Every fd handed out is a real one (of /dev/null): the code under test closes them with os.close."""

    programs: dict[int, tuple[str, bytes]] = field(default_factory=dict)
    hooks: dict[int, list[int]] = field(default_factory=dict)
    qdiscs: list[Qdisc] = field(default_factory=list)
    shaped: set[int] = field(default_factory=set)
    fds: dict[int, int] = field(default_factory=dict)  # fd → program id
    ops: list[str] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)  # operation → errno, once
    loads: list[str] = field(default_factory=list)
    on_change: Callable[[Changed], None] | None = None

    def new_program(self, name: str, tag: bytes | None = None) -> int:
        prog_id = max(self.programs, default=100) + 1
        self.programs[prog_id] = (name, tag if tag is not None else name.encode())
        return prog_id

    def open(self, prog_id: int) -> int:
        fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.fds[fd] = prog_id
        return fd

    def check(self, op: str) -> None:
        if op in self.fail:
            raise BpfError(self.fail.pop(op), op)

    # the patched functions
    def load(self, insns: list[Insn], name: str, license_: str = "GPL") -> loader.Program:
        self.check("load")
        self.loads.append(name)
        prog_id = self.new_program(name)
        return loader.Program(self.open(prog_id), name, prog_id, self.programs[prog_id][1], len(insns))

    def info(self, fd: int) -> loader.ProgInfo:
        name, tag = self.programs[self.fds[fd]]
        return loader.ProgInfo(self.fds[fd], tag, name, ())

    def fd_by_id(self, prog_id: int) -> int:
        if prog_id not in self.programs:
            raise BpfError(errno.ENOENT, "open")
        return self.open(prog_id)

    def query(self, index: int) -> list[int]:
        self.check("query")
        return list(self.hooks.get(index, []))

    def attach(self, index: int, fd: int, replace_fd: int = 0) -> None:
        self.check("attach")
        hook = self.hooks.setdefault(index, [])
        prog_id = self.fds[fd]
        if prog_id in hook:
            raise BpfError(errno.EEXIST, "attach")
        if replace_fd:
            hook[hook.index(self.fds[replace_fd])] = prog_id
            self.ops.append(f"replace {index}")
        else:
            hook.append(prog_id)
            self.ops.append(f"attach {index}")

    def detach(self, index: int, fd: int) -> None:
        self.hooks[index].remove(self.fds[fd])
        self.ops.append(f"detach {index}")

    def names(self, index: int) -> list[str]:
        return [self.programs[i][0] for i in self.hooks.get(index, [])]

    def open_fds(self) -> list[int]:
        """Fds handed out and still open (program fds the FastPath keeps are expected until it closes)."""
        still = []
        for fd in self.fds:
            try:
                os.fstat(fd)
            except OSError:
                continue
            still.append(fd)
        return still


class FakeSet:
    kernel: FakeKernel

    def __init__(self) -> None:
        self.fd, self.map_id = 1000, 1  # an fd number only the program text carries

    @classmethod
    def create(cls, name: str) -> FakeSet:
        return cls()

    def add(self, index: int) -> None:
        self.kernel.shaped.add(index)

    def discard(self, index: int) -> None:
        self.kernel.shaped.discard(index)

    def close(self) -> None:
        pass


class FakeWatch:
    def __init__(self, on_change: Callable[[Changed], None]) -> None:
        FakeSet.kernel.on_change = on_change

    def close(self) -> None:
        pass


class FakeSocket:
    def close(self) -> None:
        pass


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKernel]:
    k = FakeKernel()
    FakeSet.kernel = k
    monkeypatch.setattr(control, "probe", lambda: "")
    monkeypatch.setattr(loader, "load", k.load)
    monkeypatch.setattr(loader, "info", k.info)
    monkeypatch.setattr(loader, "fd_by_id", k.fd_by_id)
    monkeypatch.setattr(tcx, "query", k.query)
    monkeypatch.setattr(tcx, "attach", k.attach)
    monkeypatch.setattr(tcx, "detach", k.detach)
    monkeypatch.setattr(maps, "IfindexSet", FakeSet)
    monkeypatch.setattr(control, "QdiscWatch", FakeWatch)
    monkeypatch.setattr(control, "NetlinkSocket", FakeSocket)
    monkeypatch.setattr(tc, "qdiscs", lambda sock: list(k.qdiscs))
    monkeypatch.setenv(control.ENV, "auto")
    yield k
    for fd in k.open_fds():  # whatever a failing test left open
        os.close(fd)


@pytest.fixture
def fast(kernel: FakeKernel) -> Iterator[FastPath]:
    f = FastPath()
    assert f.enabled
    yield f
    f.close()
    assert kernel.open_fds() == [], "fds left open"


def on(fast: FastPath) -> bool:
    return fast.enabled  # read through a call: the state changes under operations mypy cannot see through


# -------------------------------------------------------------------------------------------------------- mode
@pytest.mark.parametrize(
    ("option", "env", "expected"),
    [
        (None, None, None),  # auto unless told otherwise: on where the kernel supports it
        (None, "on", True),
        (None, "OFF", False),
        (None, "0", False),
        (None, "auto", None),
        (True, "off", True),  # the driver's option wins
        (False, "on", False),
    ],
)
def test_wanted_mode(
    option: bool | None, env: str | None, expected: bool | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if env is None:
        monkeypatch.delenv(control.ENV, raising=False)
    else:
        monkeypatch.setenv(control.ENV, env)
    assert control.wanted_mode(option) is expected


def test_unavailable_kernel_keeps_the_routing_path_and_says_so_once(
    kernel: FakeKernel, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(control, "probe", lambda: "bpf(2) denied (unit test)")
    with caplog.at_level(logging.WARNING):
        first, second = FastPath(), FastPath()
    assert not first.enabled and not second.enabled and first.reason == "bpf(2) denied (unit test)"
    assert first.attach_now(PORT) == [] and kernel.hooks == {} and kernel.loads == []
    assert first.sync(SOCK, [PORT]).attached == 0
    assert len([r for r in caplog.records if "unit test" in r.getMessage()]) == 1
    with pytest.raises(DataplaneError, match="required but unavailable"):
        FastPath(True)


def test_switched_off_attaches_nothing_and_a_resync_removes_only_ours(kernel: FakeKernel) -> None:
    kernel.hooks[PORT.index] = [kernel.new_program("mnfpp100004d2"), kernel.new_program("cilium_x")]
    off = FastPath(False)
    assert not off.enabled and off.attach_now(PORT2) == [] and kernel.loads == []
    result = off.sync(SOCK, [PORT, PORT2])
    assert (result.attached, result.removed, result.problems) == (0, 1, [])
    assert kernel.names(PORT.index) == ["cilium_x"] and kernel.open_fds() == []


# ------------------------------------------------------------------------------------------------------ attach
def test_one_program_per_role_and_table_shared_by_devices(kernel: FakeKernel, fast: FastPath) -> None:
    for device in (PORT, PORT2, TUNNEL):
        assert fast.attach_now(device) == []
    assert kernel.loads == ["mnfpp100004d2", "mnfpt100004d2"]
    assert kernel.hooks[PORT.index] == kernel.hooks[PORT2.index] != kernel.hooks[TUNNEL.index]
    fast.retain(set())  # the network is gone: its programs are released, the next attach loads again
    fast.attach_now(Device("mnghi", 10, TABLE, Role.PORT))
    assert kernel.loads[-1] == "mnfpp100004d2" and len(kernel.loads) == 3


def test_attaching_is_idempotent_and_leaves_other_programs_alone(kernel: FakeKernel, fast: FastPath) -> None:
    foreign = kernel.new_program("cilium_x")
    kernel.hooks[PORT.index] = [foreign]
    assert fast.attach_now(PORT) == [] and fast.attach_now(PORT) == []
    assert kernel.names(PORT.index) == ["cilium_x", "mnfpp100004d2"]
    assert kernel.ops == [f"attach {PORT.index}"]


def test_resync_repairs_replaces_in_place_and_adopts_an_earlier_agents_copy(kernel: FakeKernel, fast: FastPath) -> None:
    fast.attach_now(PORT)
    ours = kernel.hooks[PORT.index][0]
    older = kernel.new_program("mnfpp100004d2", b"older-code")  # an older agent version: other code
    earlier = kernel.new_program("mnfpt100004d2")  # an earlier process of this version: same tag, other id
    kernel.hooks[PORT.index] += [kernel.new_program("mnfpp100004d2"), kernel.new_program("other")]  # a duplicate
    kernel.hooks[PORT2.index] = [older]
    kernel.hooks[TUNNEL.index] = [earlier]
    kernel.ops.clear()
    result = fast.sync(SOCK, [PORT, PORT2, TUNNEL])
    assert (result.attached, result.removed, result.adopted, result.problems) == (1, 1, 1, [])
    assert kernel.ops == [f"detach {PORT.index}", f"replace {PORT2.index}", f"replace {TUNNEL.index}"]
    assert kernel.hooks[PORT.index][0] == ours and kernel.names(PORT.index) == ["mnfpp100004d2", "other"]
    assert kernel.hooks[PORT2.index] == [ours]  # in place: never a moment without a program
    assert kernel.hooks[TUNNEL.index] != [earlier] and kernel.names(TUNNEL.index) == ["mnfpt100004d2"]
    again = fast.sync(SOCK, [PORT, PORT2, TUNNEL])
    assert (again.attached, again.removed, again.adopted) == (0, 0, 0)


def test_check_says_what_is_wrong(kernel: FakeKernel, fast: FastPath) -> None:
    assert fast.problem(SOCK, PORT) == "fast-path program missing or outdated on mnabc"
    fast.attach_now(PORT)
    assert fast.problem(SOCK, PORT) == ""
    kernel.qdiscs = [Qdisc(PORT.index, 0xFFFF0000, 0xFFFFFFF1, "ingress")]
    assert fast.problem(SOCK, PORT) == "fast-path program on mnabc, which is shaped"


# ---------------------------------------------------------------------------------------------- in background
def held_attach(kernel: FakeKernel, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """tcx attach waits for the returned event: the kernel's slow part (an RCU grace period), made long."""
    gate = threading.Event()

    def slow_attach(index: int, fd: int, replace_fd: int = 0) -> None:
        assert gate.wait(5)
        kernel.attach(index, fd, replace_fd)

    monkeypatch.setattr(tcx, "attach", slow_attach)
    return gate


def test_attach_returns_at_once_and_the_program_follows(
    kernel: FakeKernel, fast: FastPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = held_attach(kernel, monkeypatch)
    fast.attach(PORT)
    assert kernel.names(PORT.index) == []  # not yet: the caller did not wait
    assert fast.problem(SOCK, PORT) == ""  # CHECK while it is on its way: nothing wrong
    gate.set()
    assert fast.settle(5)
    assert kernel.names(PORT.index) == ["mnfpp100004d2"]


def test_a_port_shaped_before_the_background_attach_stays_off(kernel: FakeKernel, fast: FastPath) -> None:
    shape(kernel, PORT2.index)  # the bandwidth plugin ran before the background thread got to the port
    fast.attach(PORT2)
    assert fast.settle(5)
    assert kernel.shaped == {PORT2.index} and kernel.names(PORT2.index) == []
    fast.forget(PORT2.index)
    assert fast.settle(5) and kernel.shaped == set()


def test_a_forget_cancels_a_pending_attach(kernel: FakeKernel, fast: FastPath, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = held_attach(kernel, monkeypatch)
    fast.attach(TUNNEL)  # keeps the background thread busy while the next two requests queue up
    wait_for(lambda: kernel.loads != [], 5.0, every=0.001)
    fast.attach(PORT)
    fast.forget(PORT.index)
    gate.set()
    assert fast.settle(5)
    assert kernel.names(TUNNEL.index) == ["mnfpt100004d2"] and kernel.hooks.get(PORT.index) is None


# ----------------------------------------------------------------------------------------------------- shaping
def shape(kernel: FakeKernel, *indexes: int) -> None:
    kernel.qdiscs = [Qdisc(i, 0x10000, 0xFFFFFFFF, "tbf") for i in indexes]


def test_a_shaped_port_gets_no_program_and_enters_the_map(kernel: FakeKernel, fast: FastPath) -> None:
    shape(kernel, PORT.index, TUNNEL.index)  # a qdisc on a tunnel is not a pod's shaping: it keeps its program
    result = fast.sync(SOCK, [PORT, PORT2, TUNNEL])
    assert result.attached == 2 and kernel.names(PORT.index) == [] and kernel.shaped == {PORT.index}
    assert fast.attach_now(PORT) == [] and kernel.names(PORT.index) == []  # attach keeps it off too
    assert fast.problem(SOCK, PORT) == ""
    kernel.qdiscs = []
    result = fast.sync(SOCK, [PORT, PORT2, TUNNEL])
    assert result.attached == 1 and kernel.names(PORT.index) == ["mnfpp100004d2"] and kernel.shaped == set()


def test_the_watcher_moves_ports_off_the_fast_path_and_back(kernel: FakeKernel, fast: FastPath) -> None:
    for device in (PORT, PORT2, TUNNEL):
        fast.attach_now(device)
    assert kernel.on_change is not None
    shape(kernel, PORT.index)
    kernel.on_change({PORT.index, 99})  # 99: a device that is not ours (the bandwidth plugin's ifb)
    assert kernel.names(PORT.index) == [] and kernel.shaped == {PORT.index}
    assert kernel.names(PORT2.index) == ["mnfpp100004d2"]
    shape(kernel, PORT2.index)
    kernel.on_change(None)  # notifications were lost: every port re-derived
    assert kernel.shaped == {PORT2.index} and kernel.names(PORT.index) == ["mnfpp100004d2"]
    assert kernel.names(PORT2.index) == []
    fast.forget_now(PORT2.index)  # the port goes away: out of the map (ifindexes are reused)
    assert kernel.shaped == set()


# ----------------------------------------------------------------------------------------------------- failures
def test_only_an_incapable_kernel_switches_it_off(kernel: FakeKernel, fast: FastPath) -> None:
    kernel.fail["attach"] = errno.ENODEV  # the device vanished meanwhile: nobody's problem
    assert fast.attach_now(PORT) == [] and on(fast)
    kernel.fail["query"] = errno.EBUSY
    assert fast.attach_now(PORT)[0].startswith("fast path:") and on(fast)
    kernel.fail["attach"] = errno.EOPNOTSUPP
    assert fast.attach_now(PORT) and not on(fast) and "not supported" in fast.reason
    assert fast.attach_now(PORT2) == [] and PORT2.index not in kernel.hooks


def test_a_program_the_kernel_refuses_switches_it_off(kernel: FakeKernel, fast: FastPath) -> None:
    kernel.fail["load"] = errno.ENOMEM  # for now: reported, still on, and loaded at the next attempt
    assert fast.attach_now(PORT)[0].startswith("fast path:") and on(fast) and kernel.hooks == {}
    assert fast.attach_now(PORT) == [] and on(fast) and kernel.names(PORT.index) == ["mnfpp100004d2"]
    kernel.fail["load"] = errno.EACCES  # for good (the verifier's refusal): off
    assert fast.attach_now(TUNNEL) == [] and not on(fast) and TUNNEL.index not in kernel.hooks
    # what was attached before stays until the next full resync takes it away: left on, it would redirect by a
    # shaped-ports map nobody keeps up to date any more; after that sweep, resyncs leave the devices alone
    assert kernel.names(PORT.index) == ["mnfpp100004d2"]
    swept = fast.sync(SOCK, [PORT, TUNNEL])
    assert swept.removed == 1 and not swept.problems and kernel.names(PORT.index) == []
    kernel.fail["query"] = errno.EBUSY
    assert fast.sync(SOCK, [PORT, TUNNEL]).problems == []  # not even asked


def test_a_misspelt_mode_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(control.ENV, "onn")  # not silently auto
    with pytest.raises(ValueError, match=control.ENV):
        control.wanted_mode(None)
