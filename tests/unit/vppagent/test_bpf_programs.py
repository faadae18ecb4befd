"""The forwarding programs' shape without a kernel (the kernel's verifier and real packets are in
tests/netns/test_linux_fastpath.py): sizes, helpers per role, the table immediate, jumps that stay inside."""

from __future__ import annotations

import struct

import pytest

from services.vppagent.drivers.linux.fastpath import programs
from services.vppagent.drivers.linux.fastpath.asm import (
    BPF_ALU64,
    BPF_JMP,
    BPF_K,
    BPF_LDX,
    BPF_ST,
    BPF_STX,
    Alu,
    Insn,
    Jmp,
    Reg,
    Size,
)
from services.vppagent.drivers.linux.fastpath.asm import BPF_MEM as MEM
from services.vppagent.drivers.linux.fastpath.programs import Role
from services.vppagent.model import TABLE_BASE

TABLE = TABLE_BASE + 4242
CALL, EXIT = BPF_JMP | Jmp.CALL, BPF_JMP | Jmp.EXIT
MOV_K = BPF_ALU64 | Alu.MOV | BPF_K


def helpers(insns: list[Insn]) -> set[int]:
    return {i.imm for i in insns if i.code == CALL}


@pytest.mark.parametrize(("role", "count"), [(Role.PORT, 128), (Role.TUNNEL, 125)])
def test_instruction_counts(role: Role, count: int) -> None:
    """Pinned on purpose: these are hand-assembled, a change in size should be a decision (and the report's)."""
    assert len(programs.forward(TABLE, role)) == count


def test_helpers_per_role() -> None:
    port, tunnel = programs.forward(TABLE, Role.PORT), programs.forward(TABLE, Role.TUNNEL)
    assert helpers(port) == {programs.HELPER_FIB_LOOKUP, programs.HELPER_REDIRECT_PEER, programs.HELPER_REDIRECT}
    assert helpers(tunnel) == {programs.HELPER_FIB_LOOKUP, programs.HELPER_REDIRECT_PEER}  # never back out


@pytest.mark.parametrize("role", list(Role))
def test_table_is_an_immediate_stored_into_the_lookup(role: Role) -> None:
    insns = programs.forward(TABLE, role)
    tbid = [i for i in insns if i.code == BPF_ST | Size.W | MEM and i.off == programs.FIB + programs.FIB_TBID]
    assert [(i.dst, i.imm) for i in tbid] == [(Reg.R10, TABLE)]
    assert programs.forward(TABLE + 1, role) != insns


@pytest.mark.parametrize("role", list(Role))
def test_control_flow_is_forward_only_and_ends_in_exits(role: Role) -> None:
    insns = programs.forward(TABLE, role)
    assert insns[-1].code == EXIT
    for pos, insn in enumerate(insns):
        if insn.code & 0x07 == BPF_JMP and insn.code not in (CALL, EXIT):
            target = pos + 1 + insn.off
            assert pos < target < len(insns), (pos, insn)  # no loops: the verifier's job stays trivial
    # every exit returns a redirect helper's verdict or TC_ACT_OK (mov r0, 0)
    before_exit = [insns[pos - 1] for pos, i in enumerate(insns) if i.code == EXIT]
    assert all(
        (i.code == CALL and i.imm != programs.HELPER_FIB_LOOKUP) or (i.code == MOV_K and i.dst == Reg.R0 and i.imm == 0)
        for i in before_exit
    ), before_exit


@pytest.mark.parametrize("role", list(Role))
def test_stack_stays_within_the_lookup_struct(role: Role) -> None:
    """Only the 64-byte struct bpf_fib_lookup lives on the stack, every access aligned to its size."""
    for insn in programs.forward(TABLE, role):
        cls = insn.code & 0x07
        base = insn.dst if cls in (BPF_ST, BPF_STX) else insn.src
        if cls in (BPF_LDX, BPF_ST, BPF_STX) and base == Reg.R10:
            width = Size(insn.code & 0x18).bytes
            assert insn.off >= programs.FIB and insn.off + width <= 0, insn
            assert insn.off % width == 0, insn


def test_names_fit_the_kernel() -> None:
    for role in Role:
        name = programs.program_name(role, 0xFFFFFFFF)
        assert len(name) <= 15 and name.replace("_", "").isalnum()
    assert programs.program_name(Role.PORT, TABLE_BASE + 1234) == "mnfpp100004d2"


def test_network_order_constants_are_what_a_load_sees() -> None:
    """ctx->protocol and the IPv4 checksum are compared/updated as a 16-bit load of network-order bytes gives
    them on this host."""
    assert struct.unpack("=H", b"\x08\x00")[0] == programs.ETH_P_IP
    assert struct.unpack("=H", b"\x86\xdd")[0] == programs.ETH_P_IPV6
    assert struct.unpack("=H", b"\x01\x00")[0] == programs.CSUM_TTL_DELTA
