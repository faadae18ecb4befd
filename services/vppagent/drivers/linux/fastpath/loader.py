"""bpf(2) through ctypes: load a program (BPF_PROG_LOAD), read its id and tag back (BPF_OBJ_GET_INFO_BY_FD) and
run it on a crafted packet (BPF_PROG_TEST_RUN, for tests). No libbpf: the programs have no maps, no BTF and no
relocations, so the syscall's attribute block is all there is.

A failed load is retried once with the verifier's log switched on (logging costs the verifier time, so the
first attempt goes without); the error then carries the log's tail, where the verifier says what it refused."""

from __future__ import annotations

import ctypes
import os
import platform
import struct
from dataclasses import dataclass

from .asm import Insn, encode

# bpf(2) is not in libc's wrappers: its number per architecture (asm/unistd.h)
_NR_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}

BPF_PROG_LOAD = 5
BPF_PROG_TEST_RUN = 10
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_TYPE_SCHED_CLS = 3
BPF_OBJ_NAME_LEN = 16
_LOG_LEVEL_1 = 1
_LOG_SIZE = 1 << 20

# union bpf_attr, the BPF_PROG_LOAD member up to expected_attach_type: prog_type, insn_cnt, insns, license,
# log_level, log_size, log_buf, kern_version, prog_flags, prog_name[16], prog_ifindex, expected_attach_type
_PROG_LOAD = struct.Struct("=IIQQIIQII16sII")
# the BPF_OBJ_GET_INFO_BY_FD member: bpf_fd, info_len, info; and the head of struct bpf_prog_info: type, id, tag
_INFO_BY_FD = struct.Struct("=IIQ")
_PROG_INFO = struct.Struct("=II8s")
# the BPF_PROG_TEST_RUN member: prog_fd, retval, data_size_in, data_size_out, data_in, data_out, repeat,
# duration, ctx_size_in, ctx_size_out, ctx_in, ctx_out, flags, cpu, batch_size
_TEST_RUN = struct.Struct("=IIIIQQIIIIQQIII")


class BpfError(OSError):
    """A bpf(2) call failed; for loads, `log` holds the verifier's whole log (empty if it gave none)."""

    def __init__(self, err: int, what: str, log: str = "") -> None:
        tail = "\n".join(log.strip().splitlines()[-25:])
        detail = f"\nverifier log (tail):\n{tail}" if tail else ""
        super().__init__(err, f"{what}: {os.strerror(err)}{detail}")
        self.log = log


@dataclass(frozen=True, slots=True)
class Program:
    """A loaded program: its fd (ours to close), kernel id and tag (a hash of its instructions, shown by
    `tc filter show` and in filter dumps: equal tags mean the same code)."""

    fd: int
    name: str
    prog_id: int
    tag: bytes
    insn_count: int

    def close(self) -> None:
        os.close(self.fd)


@dataclass(frozen=True, slots=True)
class RunResult:
    retval: int
    data: bytes


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def syscall_number() -> int | None:
    return _NR_BPF.get(platform.machine())


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char], what: str) -> int:
    nr = syscall_number()
    if nr is None:
        raise BpfError(38, f"{what}: no bpf(2) number known for {platform.machine()}")  # ENOSYS
    ret = _libc.syscall(ctypes.c_long(nr), ctypes.c_long(cmd), attr, ctypes.c_ulong(len(attr)))
    if ret < 0:
        raise BpfError(ctypes.get_errno(), what)
    return int(ret)


def load(insns: list[Insn], name: str, license_: str = "GPL") -> Program:
    """Load a SCHED_CLS program (tc classifier, run in direct-action mode). The license must be GPL-compatible:
    the redirect and FIB helpers are GPL-only."""
    if len(name) >= BPF_OBJ_NAME_LEN or not name.replace("_", "").replace(".", "").isalnum():
        raise ValueError(f"program name {name!r}: up to 15 characters of [A-Za-z0-9_.]")
    code = ctypes.create_string_buffer(encode(insns), len(insns) * 8)
    lic = ctypes.create_string_buffer(license_.encode())
    what = f"load BPF program {name} ({len(insns)} instructions)"

    def attempt(log: ctypes.Array[ctypes.c_char] | None) -> int:
        attr = ctypes.create_string_buffer(
            _PROG_LOAD.pack(
                BPF_PROG_TYPE_SCHED_CLS,
                len(insns),
                ctypes.addressof(code),
                ctypes.addressof(lic),
                _LOG_LEVEL_1 if log is not None else 0,
                len(log) if log is not None else 0,
                ctypes.addressof(log) if log is not None else 0,
                0,
                0,
                name.encode(),
                0,
                0,
            ),
            _PROG_LOAD.size,
        )
        return _bpf(BPF_PROG_LOAD, attr, what)

    try:
        fd = attempt(None)
    except BpfError as first:
        log = ctypes.create_string_buffer(_LOG_SIZE)
        try:
            fd = attempt(log)  # a transient failure (EAGAIN under memory pressure) may pass the second time
        except BpfError as second:
            text = log.value.decode(errors="replace")
            raise BpfError(second.errno or first.errno or 0, what, text) from None
    try:
        prog_id, tag = info(fd)
    except BpfError:
        os.close(fd)
        raise
    return Program(fd, name, prog_id, tag, len(insns))


def info(fd: int) -> tuple[int, bytes]:
    """(id, tag) of a loaded program."""
    out = ctypes.create_string_buffer(_PROG_INFO.size)
    attr = ctypes.create_string_buffer(_INFO_BY_FD.pack(fd, _PROG_INFO.size, ctypes.addressof(out)), _INFO_BY_FD.size)
    _bpf(BPF_OBJ_GET_INFO_BY_FD, attr, f"info of BPF program fd {fd}")
    _type, prog_id, tag = _PROG_INFO.unpack(out.raw)
    return prog_id, tag


def run_once(fd: int, packet: bytes, ctx: bytes = b"") -> RunResult:
    """Run a program once on `packet` (an Ethernet frame) in the calling thread's netns; returns its verdict
    and the packet as the program left it. `ctx` is an optional struct __sk_buff (only some fields may be set,
    e.g. ifindex: the device the packet is seen on)."""
    data_in = ctypes.create_string_buffer(packet, len(packet))
    data_out = ctypes.create_string_buffer(len(packet) + 256)
    ctx_in = ctypes.create_string_buffer(ctx, len(ctx)) if ctx else None
    attr = ctypes.create_string_buffer(
        _TEST_RUN.pack(
            fd,
            0,
            len(packet),
            len(data_out),
            ctypes.addressof(data_in),
            ctypes.addressof(data_out),
            1,
            0,
            len(ctx),
            0,
            ctypes.addressof(ctx_in) if ctx_in is not None else 0,
            0,
            0,
            0,
            0,
        ),
        _TEST_RUN.size,
    )
    _bpf(BPF_PROG_TEST_RUN, attr, f"test run of BPF program fd {fd}")
    fields = _TEST_RUN.unpack(attr.raw)
    retval, size_out = fields[1], fields[3]
    return RunResult(retval, data_out.raw[:size_out])
