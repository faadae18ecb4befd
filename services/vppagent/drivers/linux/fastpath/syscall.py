"""bpf(2) itself: the syscall through ctypes, its command numbers and its error. No libbpf: every command the
fast path uses takes a small attribute block (`union bpf_attr`, include/uapi/linux/bpf.h) that the calling
module packs with `struct`; the kernel accepts a block shorter than the whole union (the rest reads as zero)."""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from enum import IntEnum

# bpf(2) is not in libc's wrappers: its number per architecture (asm/unistd.h)
_NR_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
OBJ_NAME_LEN = 16  # BPF_OBJ_NAME_LEN: program and map names, NUL included


class Cmd(IntEnum):
    """enum bpf_cmd (only what is used)."""

    MAP_CREATE = 0
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    PROG_LOAD = 5
    PROG_ATTACH = 8
    PROG_DETACH = 9
    PROG_TEST_RUN = 10
    PROG_GET_FD_BY_ID = 13
    OBJ_GET_INFO_BY_FD = 15
    PROG_QUERY = 16


class BpfError(OSError):
    """A bpf(2) call failed; for loads, `log` holds the verifier's whole log (empty if it gave none)."""

    def __init__(self, err: int, what: str, log: str = "") -> None:
        tail = "\n".join(log.strip().splitlines()[-25:])
        detail = f"\nverifier log (tail):\n{tail}" if tail else ""
        super().__init__(err, f"{what}: {os.strerror(err)}{detail}")
        self.log = log


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def syscall_number() -> int | None:
    return _NR_BPF.get(platform.machine())


def buffer(packed: bytes) -> ctypes.Array[ctypes.c_char]:
    """A mutable copy of an attribute block (the kernel writes results back into some)."""
    return ctypes.create_string_buffer(packed, len(packed))


def bpf(cmd: Cmd, attr: ctypes.Array[ctypes.c_char], what: str) -> int:
    """Run one command; its non-negative result (an fd for loads and creations), else BpfError."""
    nr = syscall_number()
    if nr is None:
        raise BpfError(errno.ENOSYS, f"{what}: no bpf(2) number known for {platform.machine()}")
    ret = _libc.syscall(ctypes.c_long(nr), ctypes.c_long(cmd), attr, ctypes.c_ulong(len(attr)))
    if ret < 0:
        raise BpfError(ctypes.get_errno(), what)
    return int(ret)


def check_name(name: str, what: str) -> bytes:
    """The kernel's rule for object names: up to 15 characters of [A-Za-z0-9_.]."""
    if len(name) >= OBJ_NAME_LEN or not name.replace("_", "").replace(".", "").isalnum() or not name.isascii():
        raise ValueError(f"{what} name {name!r}: up to {OBJ_NAME_LEN - 1} characters of [A-Za-z0-9_.]")
    return name.encode()


# the BPF_OBJ_GET_INFO_BY_FD member: bpf_fd, info_len, info
_INFO_BY_FD = struct.Struct("=IIQ")


def obj_info(fd: int, out: ctypes.Array[ctypes.c_char], what: str) -> None:
    """Fill `out` with the kernel's struct bpf_prog_info / bpf_map_info of the object behind `fd` (as much as fits;
    the kernel first reads the caller's struct, where some fields say where to put arrays)."""
    bpf(Cmd.OBJ_GET_INFO_BY_FD, buffer(_INFO_BY_FD.pack(fd, len(out), ctypes.addressof(out))), what)
