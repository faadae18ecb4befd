"""Programs on a device's ingress with tcx: BPF_PROG_ATTACH / BPF_PROG_DETACH / BPF_PROG_QUERY with attach type
BPF_TCX_INGRESS and the device's ifindex (the kernel's multi-program attach, Linux >= 6.6, in its non-link form).

Why this form: the attachment belongs to the device, not to an fd or link of the agent, so it outlives the
agent (a restarted one finds it with a query) and goes away with the device; and no qdisc is involved, so a
chained plugin (bandwidth) still installs the ingress qdisc it needs, whose filters run after our program
whenever it answers TCX_NEXT. The kernel resolves the ifindex in the calling thread's network namespace."""

from __future__ import annotations

import ctypes
import struct

from .syscall import Cmd, bpf, buffer

BPF_TCX_INGRESS = 46
BPF_F_REPLACE = 1 << 2
MPROG_MAX = 64  # BPF_MPROG_MAX: programs per hook

# the BPF_PROG_ATTACH/DETACH member: target_ifindex, attach_bpf_fd, attach_type, attach_flags, replace_bpf_fd,
# relative_fd, expected_revision
_ATTACH = struct.Struct("=IIIIIIQ")
# the BPF_PROG_QUERY member: target_ifindex, attach_type, query_flags, attach_flags, prog_ids, count, (pad),
# prog_attach_flags, link_ids, link_attach_flags, revision
_QUERY = struct.Struct("=IIIIQIxxxxQQQQ")


def attach_attr(ifindex: int, fd: int, replace_fd: int = 0) -> bytes:
    """Append the program behind `fd` to the device's ingress programs, or with `replace_fd` put it in that
    program's place in one step (BPF_F_REPLACE: no packet sees neither)."""
    flags = BPF_F_REPLACE if replace_fd else 0
    return _ATTACH.pack(ifindex, fd, BPF_TCX_INGRESS, flags, replace_fd, 0, 0)


def query_attr(ifindex: int, ids_address: int, capacity: int) -> bytes:
    return _QUERY.pack(ifindex, BPF_TCX_INGRESS, 0, 0, ids_address, capacity, 0, 0, 0, 0)


def attach(ifindex: int, fd: int, replace_fd: int = 0) -> None:
    what = f"{'replace' if replace_fd else 'attach'} BPF program on ifindex {ifindex} (tcx ingress)"
    bpf(Cmd.PROG_ATTACH, buffer(attach_attr(ifindex, fd, replace_fd)), what)


def detach(ifindex: int, fd: int) -> None:
    bpf(Cmd.PROG_DETACH, buffer(attach_attr(ifindex, fd)), f"detach BPF program from ifindex {ifindex} (tcx ingress)")


def query(ifindex: int) -> list[int]:
    """Ids of the programs on the device's ingress, in the order they run (ENODEV: no such device)."""
    ids = (ctypes.c_uint32 * MPROG_MAX)()
    attr = buffer(query_attr(ifindex, ctypes.addressof(ids), MPROG_MAX))
    bpf(Cmd.PROG_QUERY, attr, f"query tcx ingress programs of ifindex {ifindex}")
    count = _QUERY.unpack(attr.raw)[5]
    return list(ids[: min(count, MPROG_MAX)])
