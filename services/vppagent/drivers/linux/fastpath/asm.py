"""A tiny typed assembler for eBPF: instructions as `struct bpf_insn` (include/uapi/linux/bpf.h), named labels
for jumps, and the checks the kernel would otherwise report less clearly (register and immediate ranges).

An instruction is 8 bytes: opcode, a byte holding dst_reg:4 and src_reg:4 (C bitfields, so their order follows
the host's byte order), a signed 16-bit offset and a signed 32-bit immediate, all in host byte order. Jump
offsets count instructions from the one after the jump; the assembler resolves them from labels."""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass
from enum import IntEnum

# instruction classes
BPF_LD = 0x00
BPF_LDX = 0x01
BPF_ST = 0x02
BPF_STX = 0x03
BPF_ALU = 0x04
BPF_JMP = 0x05
BPF_ALU64 = 0x07

# memory modes (LD/LDX/ST/STX)
BPF_IMM = 0x00
BPF_MEM = 0x60

# ld_imm64's src_reg when its immediate is a map's fd, which the verifier replaces with the map's address
BPF_PSEUDO_MAP_FD = 1

# operand source (ALU/JMP)
BPF_K = 0x00  # immediate
BPF_X = 0x08  # register

_INSN = struct.Struct("=BBhi")
_S16 = (-(1 << 15), (1 << 15) - 1)
_S32 = (-(1 << 31), (1 << 31) - 1)


class Reg(IntEnum):
    """r0: return value and helper result; r1-r5: helper arguments (clobbered by calls); r6-r9: callee-saved;
    r10: read-only frame pointer (the stack grows down from it, 512 bytes)."""

    R0 = 0
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5
    R6 = 6
    R7 = 7
    R8 = 8
    R9 = 9
    R10 = 10


class Size(IntEnum):
    """Access widths of loads and stores (the opcode's size bits) and their byte counts via `.bytes`."""

    W = 0x00
    H = 0x08
    B = 0x10
    DW = 0x18

    @property
    def bytes(self) -> int:
        return {Size.W: 4, Size.H: 2, Size.B: 1, Size.DW: 8}[self]


class Alu(IntEnum):
    ADD = 0x00
    SUB = 0x10
    MUL = 0x20
    DIV = 0x30
    OR = 0x40
    AND = 0x50
    LSH = 0x60
    RSH = 0x70
    NEG = 0x80
    MOD = 0x90
    XOR = 0xA0
    MOV = 0xB0
    ARSH = 0xC0


class Jmp(IntEnum):
    """Conditions (unsigned unless S-prefixed), plus the unconditional and control-transfer codes."""

    JA = 0x00
    JEQ = 0x10
    JGT = 0x20
    JGE = 0x30
    JSET = 0x40
    JNE = 0x50
    JSGT = 0x60
    JSGE = 0x70
    CALL = 0x80
    EXIT = 0x90
    JLT = 0xA0
    JLE = 0xB0
    JSLT = 0xC0
    JSLE = 0xD0


class AsmError(ValueError):
    """A program the assembler refuses to encode (bad register, immediate out of range, unknown label...)."""


@dataclass(frozen=True, slots=True)
class Insn:
    """One encoded instruction slot."""

    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def encode(self) -> bytes:
        if not (0 <= self.dst <= 10 and 0 <= self.src <= 10):
            raise AsmError(f"register out of range in {self}")
        if not _S16[0] <= self.off <= _S16[1]:
            raise AsmError(f"offset {self.off} does not fit 16 bits in {self}")
        if not _S32[0] <= self.imm <= _S32[1]:
            raise AsmError(f"immediate {self.imm} does not fit 32 bits (signed) in {self}")
        regs = (self.src << 4) | self.dst if sys.byteorder == "little" else (self.dst << 4) | self.src
        return _INSN.pack(self.code, regs, self.off, self.imm)


@dataclass(frozen=True, slots=True)
class _Jump:
    """A jump whose offset is known once the label's position is."""

    code: int
    dst: int
    src: int
    imm: int
    label: str


Operand = Reg | int


class Asm:
    """Builds a program instruction by instruction; `assemble()` resolves labels and returns the instructions."""

    def __init__(self) -> None:
        self._items: list[Insn | _Jump] = []
        self._labels: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    # ---------------------------------------------------------------------------------------------- structure
    def label(self, name: str) -> None:
        if name in self._labels:
            raise AsmError(f"label {name!r} defined twice")
        self._labels[name] = len(self._items)

    # ---------------------------------------------------------------------------------------------- ALU
    def alu(self, op: Alu, dst: Reg, src: Operand, *, wide: bool = True) -> None:
        """dst = dst <op> src (64-bit unless `wide` is False: then 32-bit, upper half zeroed)."""
        cls = BPF_ALU64 if wide else BPF_ALU
        if isinstance(src, Reg):
            self._items.append(Insn(cls | op | BPF_X, dst, src))
        else:
            self._items.append(Insn(cls | op | BPF_K, dst, 0, 0, src))

    def mov(self, dst: Reg, src: Operand) -> None:
        self.alu(Alu.MOV, dst, src)

    def add(self, dst: Reg, src: Operand) -> None:
        self.alu(Alu.ADD, dst, src)

    def sub(self, dst: Reg, src: Operand) -> None:
        self.alu(Alu.SUB, dst, src)

    def and_(self, dst: Reg, src: Operand) -> None:
        self.alu(Alu.AND, dst, src)

    # ---------------------------------------------------------------------------------------------- memory
    def ldx(self, size: Size, dst: Reg, src: Reg, off: int) -> None:
        """dst = *(size *)(src + off)"""
        self._items.append(Insn(BPF_LDX | size | BPF_MEM, dst, src, off))

    def stx(self, size: Size, dst: Reg, off: int, src: Reg) -> None:
        """*(size *)(dst + off) = src"""
        self._items.append(Insn(BPF_STX | size | BPF_MEM, dst, src, off))

    def st(self, size: Size, dst: Reg, off: int, imm: int) -> None:
        """*(size *)(dst + off) = imm"""
        self._items.append(Insn(BPF_ST | size | BPF_MEM, dst, 0, off, imm))

    def ld_imm64(self, dst: Reg, value: int) -> None:
        """dst = a 64-bit constant: the only two-slot instruction (the second slot holds the upper half)."""
        value &= (1 << 64) - 1
        low, high = value & 0xFFFFFFFF, value >> 32
        self._items.append(Insn(BPF_LD | Size.DW | BPF_IMM, dst, 0, 0, _signed32(low)))
        self._items.append(Insn(0, 0, 0, 0, _signed32(high)))

    def ld_map_fd(self, dst: Reg, fd: int) -> None:
        """dst = the map behind `fd` (for map helpers): ld_imm64 marked BPF_PSEUDO_MAP_FD. The fd only has to be
        valid while the program loads; the program's tag is computed without it."""
        if fd < 0:
            raise AsmError(f"map fd {fd} is not a file descriptor")
        self._items.append(Insn(BPF_LD | Size.DW | BPF_IMM, dst, BPF_PSEUDO_MAP_FD, 0, fd))
        self._items.append(Insn(0, 0, 0, 0, 0))

    # ---------------------------------------------------------------------------------------------- control
    def jmp(self, cond: Jmp, dst: Reg, src: Operand, label: str) -> None:
        """if (dst <cond> src) goto label (64-bit comparison; an immediate is sign-extended)."""
        if cond in (Jmp.JA, Jmp.CALL, Jmp.EXIT):
            raise AsmError(f"{cond.name} is not a conditional jump")
        if isinstance(src, Reg):
            self._items.append(_Jump(BPF_JMP | cond | BPF_X, dst, src, 0, label))
        else:
            self._items.append(_Jump(BPF_JMP | cond | BPF_K, dst, 0, src, label))

    def ja(self, label: str) -> None:
        self._items.append(_Jump(BPF_JMP | Jmp.JA, 0, 0, 0, label))

    def call(self, helper: int) -> None:
        """Call a helper by its number (enum bpf_func_id): r0 = helper(r1, ..., r5); r1-r5 are clobbered."""
        self._items.append(Insn(BPF_JMP | Jmp.CALL, 0, 0, 0, helper))

    def exit(self) -> None:
        """Return r0."""
        self._items.append(Insn(BPF_JMP | Jmp.EXIT))

    # ---------------------------------------------------------------------------------------------- output
    def assemble(self) -> list[Insn]:
        out: list[Insn] = []
        for pos, item in enumerate(self._items):
            if isinstance(item, Insn):
                out.append(item)
                continue
            target = self._labels.get(item.label)
            if target is None:
                raise AsmError(f"jump to undefined label {item.label!r}")
            out.append(Insn(item.code, item.dst, item.src, target - pos - 1, item.imm))
        if not out or out[-1].code not in (BPF_JMP | Jmp.EXIT, BPF_JMP | Jmp.JA):
            raise AsmError("a program must end with exit (or an unconditional jump)")
        return out


def encode(insns: list[Insn]) -> bytes:
    return b"".join(insn.encode() for insn in insns)


def _signed32(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value
