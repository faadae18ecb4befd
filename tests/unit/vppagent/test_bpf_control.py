"""The fast path's control logic without a kernel: mode selection, the unavailable kernel (routing path only,
logged once), what attaching asks for, and which failures switch it off."""

from __future__ import annotations

import errno
import logging

import pytest

from services.vppagent.drivers.linux.fastpath import control, loader
from services.vppagent.drivers.linux.fastpath.asm import Insn
from services.vppagent.drivers.linux.fastpath.control import Device, FastPath
from services.vppagent.drivers.linux.fastpath.programs import Role
from services.vppagent.drivers.linux.netlink.constants import RTM_NEWQDISC, RTM_NEWTFILTER
from services.vppagent.drivers.linux.netlink.socket import Outcome, Request
from services.vppagent.errors import DataplaneError

PORT = Device("mnabc", 7, 0x100004D2, Role.PORT)


def on(fast: FastPath) -> bool:
    return fast.enabled  # read through a call: the state changes under operations mypy cannot see through


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A kernel that loads everything (fake programs, fd numbers that are never used)."""
    loaded: list[str] = []

    def fake_load(insns: list[Insn], name: str, license_: str = "GPL") -> loader.Program:
        loaded.append(name)
        return loader.Program(1000 + len(loaded), name, len(loaded), b"tag" + name.encode()[:5], len(insns))

    monkeypatch.setattr(control, "probe", lambda: "")
    monkeypatch.setattr(loader, "load", fake_load)
    monkeypatch.setattr(loader.Program, "close", lambda self: None)
    monkeypatch.setenv(control.ENV, "auto")
    return loaded


@pytest.mark.parametrize(
    ("option", "env", "expected"),
    [
        (None, None, False),  # off unless asked for (see control's docstring)
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
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(control.ENV, "auto")
    monkeypatch.setattr(control, "probe", lambda: "bpf(2) denied (unit test)")
    with caplog.at_level(logging.WARNING):
        first, second = FastPath(), FastPath()
    assert not first.enabled and not second.enabled and first.reason == "bpf(2) denied (unit test)"
    assert first.requests(PORT) == []
    assert len([r for r in caplog.records if "unit test" in r.getMessage()]) == 1
    with pytest.raises(DataplaneError, match="required but unavailable"):
        FastPath(True)


def test_switched_off_asks_for_nothing(loads: list[str]) -> None:
    off = FastPath(False)
    assert not off.enabled and off.requests(PORT) == [] and loads == []


def test_one_program_per_role_and_table_shared_by_devices(loads: list[str]) -> None:
    fast = FastPath()
    first = fast.requests(PORT)
    fast.requests(Device("mndef", 8, PORT.table, Role.PORT))
    fast.requests(Device("mnvx1234", 9, PORT.table, Role.TUNNEL))
    assert [r.kind for r in first] == [RTM_NEWQDISC, RTM_NEWTFILTER]
    assert loads == ["mnfpp100004d2", "mnfpt100004d2"]
    fast.retain(set())  # the network is gone: its programs are released, the next attach loads again
    fast.requests(PORT)
    assert loads[-1] == "mnfpp100004d2" and len(loads) == 3


def test_only_an_incapable_kernel_switches_it_off(loads: list[str]) -> None:
    fast = FastPath()
    request = fast.requests(PORT)[1]
    gone = fast.settle([Outcome(request, errno.ENODEV, "")])  # the device vanished: that port's problem only
    assert on(fast) and gone and "fast path" in gone[0]
    assert fast.settle([Outcome(request, 0, "")]) == []
    unknown = Request(RTM_NEWQDISC, 0, b"", "add clsact on mnabc")
    fast.settle([Outcome(unknown, errno.ENOENT, "Specified qdisc kind is unknown")])
    assert not on(fast) and "qdisc kind is unknown" in fast.reason
    assert fast.requests(PORT) == []
