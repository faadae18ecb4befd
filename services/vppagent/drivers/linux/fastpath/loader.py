"""Programs through bpf(2): load one (BPF_PROG_LOAD), read what the kernel knows of one (BPF_OBJ_GET_INFO_BY_FD:
id, tag, name, the maps it uses), open one by id (BPF_PROG_GET_FD_BY_ID: programs attached by someone else) and
run one on a crafted packet (BPF_PROG_TEST_RUN, for tests). The programs' only relocation is the map they
reference, resolved by the kernel from the fd in their ld_imm64 (see `asm.Asm.ld_map_fd`).

A failed load is retried once with the verifier's log switched on (logging costs the verifier time, so the
first attempt goes without); the error then carries the log's tail, where the verifier says what it refused."""

from __future__ import annotations

import ctypes
import os
import struct
from dataclasses import dataclass

from .asm import Insn, encode
from .syscall import BpfError, Cmd, bpf, buffer, check_name, obj_info

BPF_PROG_TYPE_SCHED_CLS = 3
_LOG_LEVEL_1 = 1
_LOG_SIZE = 1 << 20
_MAX_MAPS = 8  # map ids read back per program (ours use one)

# union bpf_attr, the BPF_PROG_LOAD member up to expected_attach_type: prog_type, insn_cnt, insns, license,
# log_level, log_size, log_buf, kern_version, prog_flags, prog_name[16], prog_ifindex, expected_attach_type
_PROG_LOAD = struct.Struct("=IIQQIIQII16sII")
# the head of struct bpf_prog_info: type, id, tag[8], jited_prog_len, xlated_prog_len, jited_prog_insns,
# xlated_prog_insns, load_time, created_by_uid, nr_map_ids, map_ids, name[16]
PROG_INFO = struct.Struct("=II8sIIQQQIIQ16s")
# the BPF_*_GET_FD_BY_ID member: prog_id (or map_id), next_id, open_flags
_BY_ID = struct.Struct("=III")
# the BPF_PROG_TEST_RUN member: prog_fd, retval, data_size_in, data_size_out, data_in, data_out, repeat,
# duration, ctx_size_in, ctx_size_out, ctx_in, ctx_out, flags, cpu, batch_size
_TEST_RUN = struct.Struct("=IIIIQQIIIIQQIII")


@dataclass(frozen=True, slots=True)
class Program:
    """A loaded program: its fd (ours to close), kernel id (unique while it exists: tells this process's load
    from another's) and tag (a hash of its instructions with map references left out: equal tags mean the same
    code)."""

    fd: int
    name: str
    prog_id: int
    tag: bytes
    insn_count: int

    def close(self) -> None:
        os.close(self.fd)


@dataclass(frozen=True, slots=True)
class ProgInfo:
    """What the kernel tells about a loaded program."""

    prog_id: int
    tag: bytes
    name: str
    map_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RunResult:
    retval: int
    data: bytes


def load_attr(insns: int, code: int, license_: int, name: bytes, log: ctypes.Array[ctypes.c_char] | None) -> bytes:
    """The BPF_PROG_LOAD block for a SCHED_CLS program (`code`, `license_`: addresses of the instructions and of
    the NUL-terminated license)."""
    return _PROG_LOAD.pack(
        BPF_PROG_TYPE_SCHED_CLS,
        insns,
        code,
        license_,
        _LOG_LEVEL_1 if log is not None else 0,
        len(log) if log is not None else 0,
        ctypes.addressof(log) if log is not None else 0,
        0,
        0,
        name,
        0,
        0,  # no expected_attach_type: tcx accepts any SCHED_CLS program
    )


def load(insns: list[Insn], name: str, license_: str = "GPL") -> Program:
    """Load a SCHED_CLS program (what tcx runs). The license must be GPL-compatible: the redirect and FIB helpers
    are GPL-only."""
    raw_name = check_name(name, "program")
    code = ctypes.create_string_buffer(encode(insns), len(insns) * 8)
    lic = ctypes.create_string_buffer(license_.encode())
    what = f"load BPF program {name} ({len(insns)} instructions)"

    def attempt(log: ctypes.Array[ctypes.c_char] | None) -> int:
        attr = load_attr(len(insns), ctypes.addressof(code), ctypes.addressof(lic), raw_name, log)
        return bpf(Cmd.PROG_LOAD, buffer(attr), what)

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
        found = info(fd)
    except BpfError:
        os.close(fd)
        raise
    return Program(fd, name, found.prog_id, found.tag, len(insns))


def info(fd: int) -> ProgInfo:
    """Id, tag, name and map ids of a loaded program."""
    maps = (ctypes.c_uint32 * _MAX_MAPS)()
    # the kernel reads the caller's struct first: nr_map_ids and map_ids say where the map ids may go
    out = buffer(PROG_INFO.pack(0, 0, b"", 0, 0, 0, 0, 0, 0, _MAX_MAPS, ctypes.addressof(maps), b""))
    obj_info(fd, out, f"info of BPF program fd {fd}")
    return parse_info(out.raw, list(maps))


def parse_info(raw: bytes, map_ids: list[int]) -> ProgInfo:
    fields = PROG_INFO.unpack_from(raw)
    prog_id, tag, count, name = fields[1], fields[2], fields[9], fields[11]
    return ProgInfo(
        prog_id, tag, name.split(b"\0", 1)[0].decode(errors="replace"), tuple(map_ids[: min(count, _MAX_MAPS)])
    )


def fd_by_id(prog_id: int) -> int:
    """An fd of a program by id (someone else's, e.g. attached by an earlier agent): ours to close. ENOENT when
    it is gone."""
    return bpf(Cmd.PROG_GET_FD_BY_ID, buffer(_BY_ID.pack(prog_id, 0, 0)), f"open BPF program id {prog_id}")


def run_once(fd: int, packet: bytes, ctx: bytes = b"") -> RunResult:
    """Run a program once on `packet` (an Ethernet frame) in the calling thread's netns; returns its verdict
    and the packet as the program left it. `ctx` is an optional struct __sk_buff (only some fields may be set,
    e.g. ifindex: the device the packet is seen on)."""
    data_in = ctypes.create_string_buffer(packet, len(packet))
    data_out = ctypes.create_string_buffer(len(packet) + 256)
    ctx_in = ctypes.create_string_buffer(ctx, len(ctx)) if ctx else None
    attr = buffer(
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
        )
    )
    bpf(Cmd.PROG_TEST_RUN, attr, f"test run of BPF program fd {fd}")
    fields = _TEST_RUN.unpack(attr.raw)
    retval, size_out = fields[1], fields[3]
    return RunResult(retval, data_out.raw[:size_out])
