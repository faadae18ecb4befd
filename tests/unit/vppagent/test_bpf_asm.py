"""The eBPF assembler without a kernel: encodings against the kernel's instruction macros (BPF_MOV64_IMM,
BPF_LDX_MEM, ... in include/linux/filter.h, as bytes on a little-endian host), label resolution, refusals."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from services.vppagent.drivers.linux.fastpath.asm import Alu, Asm, AsmError, Insn, Jmp, Reg, Size, encode

pytestmark = pytest.mark.skipif(sys.byteorder != "little", reason="expected bytes are little-endian")


def one(build: Callable[[Asm], None]) -> bytes:
    a = Asm()
    build(a)
    a.exit()
    return encode(a.assemble())[:-8]


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda a: a.mov(Reg.R0, 0), "b7 00 0000 00000000"),  # BPF_MOV64_IMM(R0, 0)
        (lambda a: a.mov(Reg.R6, Reg.R1), "bf 16 0000 00000000"),  # BPF_MOV64_REG(R6, R1): src in the high nibble
        (lambda a: a.add(Reg.R2, -64), "07 02 0000 c0ffffff"),  # BPF_ALU64_IMM(BPF_ADD, R2, -64)
        (lambda a: a.sub(Reg.R2, 1), "17 02 0000 01000000"),
        (lambda a: a.and_(Reg.R2, 0xF0), "57 02 0000 f0000000"),
        (lambda a: a.alu(Alu.ADD, Reg.R2, 1, wide=False), "04 02 0000 01000000"),  # 32-bit ALU class
        (lambda a: a.ldx(Size.W, Reg.R2, Reg.R1, 76), "61 12 4c00 00000000"),  # BPF_LDX_MEM(BPF_W, R2, R1, 76)
        (lambda a: a.ldx(Size.B, Reg.R2, Reg.R7, 22), "71 72 1600 00000000"),
        (lambda a: a.ldx(Size.H, Reg.R2, Reg.R7, 24), "69 72 1800 00000000"),
        (lambda a: a.ldx(Size.DW, Reg.R2, Reg.R7, 22), "79 72 1600 00000000"),
        (lambda a: a.stx(Size.DW, Reg.R10, -8, Reg.R2), "7b 2a f8ff 00000000"),  # BPF_STX_MEM(BPF_DW, R10, R2, -8)
        (lambda a: a.stx(Size.H, Reg.R7, 24, Reg.R2), "6b 27 1800 00000000"),
        (lambda a: a.st(Size.W, Reg.R10, -16, 0x100004D2), "62 0a f0ff d2040010"),  # BPF_ST_MEM(BPF_W, R10, -16, imm)
        (lambda a: a.st(Size.B, Reg.R10, -64, 2), "72 0a c0ff 02000000"),
        (lambda a: a.call(69), "85 00 0000 45000000"),  # BPF_EMIT_CALL(BPF_FUNC_fib_lookup)
        (lambda a: a.ld_imm64(Reg.R1, 0x1122334455667788), "18 01 0000 88776655 00 00 0000 44332211"),
        # BPF_LD_MAP_FD(R1, 5): ld_imm64 with src_reg BPF_PSEUDO_MAP_FD, the fd in the low half
        (lambda a: a.ld_map_fd(Reg.R1, 5), "18 11 0000 05000000 00 00 0000 00000000"),
    ],
)
def test_encodings_match_the_kernel_macros(build: Callable[[Asm], None], expected: str) -> None:
    assert one(build).hex() == expected.replace(" ", "")


def test_jumps_resolve_labels_forward_and_backward() -> None:
    a = Asm()
    a.label("top")
    a.jmp(Jmp.JEQ, Reg.R2, 0x45, "end")  # forward over two instructions
    a.jmp(Jmp.JGT, Reg.R2, Reg.R8, "top")  # backward: -2
    a.ja("end")
    a.label("end")
    a.exit()
    insns = a.assemble()
    assert [i.encode().hex() for i in insns] == [
        "1502020045000000",  # BPF_JMP_IMM(BPF_JEQ, R2, 0x45, +2)
        "2d82feff00000000",  # BPF_JMP_REG(BPF_JGT, R2, R8, -2)
        "0500000000000000",  # BPF_JMP_A(0)
        "9500000000000000",  # BPF_EXIT_INSN()
    ]
    assert len(a) == 4


@pytest.mark.parametrize(
    ("insn", "message"),
    [
        (Insn(0xB7, 11), "register"),
        (Insn(0x61, 2, 1, 1 << 15), "offset"),
        (Insn(0xB7, 0, 0, 0, 1 << 31), "immediate"),
        (Insn(0xB7, 0, 0, 0, -(1 << 31) - 1), "immediate"),
    ],
)
def test_out_of_range_fields_are_refused(insn: Insn, message: str) -> None:
    with pytest.raises(AsmError, match=message):
        insn.encode()


def test_bad_programs_are_refused() -> None:
    a = Asm()
    a.ja("nowhere")
    with pytest.raises(AsmError, match="undefined label"):
        a.assemble()
    b = Asm()
    b.label("x")
    with pytest.raises(AsmError, match="twice"):
        b.label("x")
    c = Asm()
    c.mov(Reg.R0, 0)
    with pytest.raises(AsmError, match="must end"):
        c.assemble()
    d = Asm()
    with pytest.raises(AsmError, match="not a conditional"):
        d.jmp(Jmp.JA, Reg.R0, 0, "x")
    with pytest.raises(AsmError, match="not a file descriptor"):
        d.ld_map_fd(Reg.R1, -1)


def test_size_bytes() -> None:
    assert [s.bytes for s in (Size.B, Size.H, Size.W, Size.DW)] == [1, 2, 4, 8]
