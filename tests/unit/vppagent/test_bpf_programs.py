"""The forwarding programs' shape without a kernel (the kernel's verifier and real packets are in
tests/netns/test_linux_fastpath.py): sizes, helpers per role, the table immediate, jumps that stay inside, the
shaped-ports map consulted before anything in the packet changes."""

from __future__ import annotations

import struct

import pytest

from services.vppagent.drivers.linux.fastpath import programs
from services.vppagent.drivers.linux.fastpath.asm import (
    BPF_ALU64,
    BPF_IMM,
    BPF_JMP,
    BPF_K,
    BPF_LD,
    BPF_LDX,
    BPF_PSEUDO_MAP_FD,
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
MAP_FD = 42  # never used as an fd here: the programs only carry it
CALL, EXIT = BPF_JMP | Jmp.CALL, BPF_JMP | Jmp.EXIT
MOV_K = BPF_ALU64 | Alu.MOV | BPF_K
LD_IMM64 = BPF_LD | Size.DW | BPF_IMM


def forward(table: int, role: Role, map_fd: int = MAP_FD) -> list[Insn]:
    return programs.forward(table, role, map_fd)


def helpers(insns: list[Insn]) -> set[int]:
    return {i.imm for i in insns if i.code == CALL}


@pytest.mark.parametrize(("role", "count"), [(Role.PORT, 145), (Role.TUNNEL, 142)])
def test_instruction_counts(role: Role, count: int) -> None:
    """Pinned on purpose: these are hand-assembled, a change in size should be a decision (and the report's)."""
    assert len(forward(TABLE, role)) == count


def test_helpers_per_role() -> None:
    port, tunnel = forward(TABLE, Role.PORT), forward(TABLE, Role.TUNNEL)
    common = {programs.HELPER_FIB_LOOKUP, programs.HELPER_MAP_LOOKUP_ELEM, programs.HELPER_REDIRECT_PEER}
    assert helpers(port) == common | {programs.HELPER_REDIRECT}
    assert helpers(tunnel) == common  # never back out


@pytest.mark.parametrize("role", list(Role))
def test_table_is_an_immediate_stored_into_the_lookup(role: Role) -> None:
    insns = forward(TABLE, role)
    tbid = [i for i in insns if i.code == BPF_ST | Size.W | MEM and i.off == programs.FIB + programs.FIB_TBID]
    assert [(i.dst, i.imm) for i in tbid] == [(Reg.R10, TABLE)]
    assert forward(TABLE + 1, role) != insns


@pytest.mark.parametrize("role", list(Role))
def test_control_flow_is_forward_only_and_ends_in_exits(role: Role) -> None:
    insns = forward(TABLE, role)
    assert insns[-1].code == EXIT
    for pos, insn in enumerate(insns):
        if insn.code & 0x07 == BPF_JMP and insn.code not in (CALL, EXIT):
            target = pos + 1 + insn.off
            assert pos < target < len(insns), (pos, insn)  # no loops: the verifier's job stays trivial
    # every exit returns a redirect helper's verdict or TCX_NEXT (mov r0, -1): never 0, which under tcx is
    # TCX_PASS and would skip a chained plugin's ingress qdisc
    redirects = {programs.HELPER_REDIRECT, programs.HELPER_REDIRECT_PEER}
    before_exit = [insns[pos - 1] for pos, i in enumerate(insns) if i.code == EXIT]
    assert all(
        (i.code == CALL and i.imm in redirects) or (i.code == MOV_K and i.dst == Reg.R0 and i.imm == programs.TCX_NEXT)
        for i in before_exit
    ), before_exit
    assert programs.TCX_NEXT == -1


@pytest.mark.parametrize("role", list(Role))
def test_stack_stays_within_the_lookup_struct(role: Role) -> None:
    """Only the 64-byte struct bpf_fib_lookup and the map key below it live on the stack, every access aligned
    to its size."""
    for insn in forward(TABLE, role):
        cls = insn.code & 0x07
        base = insn.dst if cls in (BPF_ST, BPF_STX) else insn.src
        if cls in (BPF_LDX, BPF_ST, BPF_STX) and base == Reg.R10:
            width = Size(insn.code & 0x18).bytes
            assert insn.off >= programs.SHAPED_KEY and insn.off + width <= 0, insn
            assert insn.off >= programs.FIB or insn.off + width <= programs.FIB, insn  # never across both
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


@pytest.mark.parametrize("role", list(Role))
def test_the_shaped_map_is_consulted_for_local_ports_before_the_packet_changes(role: Role) -> None:
    """Once per family, on the local-port branch: the key is the lookup's egress ifindex, a hit jumps to the
    TCX_NEXT exit, and no store into the packet (r7) lies between the FIB lookup and that check."""
    insns = forward(TABLE, role)
    maps = [pos for pos, i in enumerate(insns) if i.code == LD_IMM64 and i.src == BPF_PSEUDO_MAP_FD]
    assert [(insns[p].dst, insns[p].imm, insns[p + 1].imm) for p in maps] == [(Reg.R1, MAP_FD, 0)] * 2
    pass_exit = len(insns) - 2  # mov r0, TCX_NEXT; exit
    fib_calls = [pos for pos, i in enumerate(insns) if i.code == CALL and i.imm == programs.HELPER_FIB_LOOKUP]
    for fib, ld in zip(fib_calls, maps, strict=True):
        key_store, call, hit = insns[ld - 1], insns[ld + 4], insns[ld + 5]
        assert (key_store.dst, key_store.off, key_store.src) == (Reg.R10, programs.SHAPED_KEY, Reg.R2)
        assert insns[ld - 2].off == programs.FIB + programs.FIB_IFINDEX
        assert (call.code, call.imm) == (CALL, programs.HELPER_MAP_LOOKUP_ELEM)
        assert (hit.code, hit.dst, hit.imm, ld + 6 + hit.off) == (BPF_JMP | Jmp.JNE | BPF_K, Reg.R0, 0, pass_exit)
        packet_stores = [i for i in insns[fib:ld] if i.code & 0x07 in (BPF_ST, BPF_STX) and i.dst == Reg.R7]
        assert packet_stores == []


def test_the_map_fd_is_the_only_difference_between_two_agents_programs() -> None:
    """The kernel's tag leaves map references out: an earlier agent's program (its own map) has our tag."""
    mine, theirs = forward(TABLE, Role.PORT, 7), forward(TABLE, Role.PORT, 9)
    differ = [pos for pos, (a, b) in enumerate(zip(mine, theirs, strict=True)) if a != b]
    assert len(differ) == 2 and all(mine[p].src == BPF_PSEUDO_MAP_FD for p in differ)
