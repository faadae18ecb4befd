"""The one map the fast path uses: the set of shaped ports, by ifindex (BPF_MAP_CREATE, BPF_MAP_*_ELEM).

A hash map, not an array indexed by ifindex: ifindexes only grow while a node churns pods (the kernel allocates
them cyclically up to 2^31), so no array bound fits; a hash of u32 keys costs one lookup either way, and it is
created without preallocation (BPF_F_NO_PREALLOC) because it is almost always empty: memory is taken per entry.
The value is one byte, unused (presence is the information)."""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from dataclasses import dataclass

from .syscall import BpfError, Cmd, bpf, buffer, check_name, obj_info

BPF_MAP_TYPE_HASH = 1
BPF_F_NO_PREALLOC = 1
BPF_ANY = 0
KEY = struct.Struct("=I")  # the ifindex, host order (as the program stores it from struct bpf_fib_lookup)
VALUE_SIZE = 1
MAX_ENTRIES = 65536  # shaped ports on one node at a time

# the BPF_MAP_CREATE member up to map_name: map_type, key_size, value_size, max_entries, map_flags,
# inner_map_fd, numa_node, map_name[16]
_CREATE = struct.Struct("=IIIIIII16s")
# the BPF_MAP_*_ELEM member: map_fd, (pad), key, value, flags
_ELEM = struct.Struct("=IxxxxQQQ")
# the head of struct bpf_map_info: type, id
_MAP_INFO = struct.Struct("=II")


def create_attr(name: bytes, max_entries: int = MAX_ENTRIES) -> bytes:
    return _CREATE.pack(BPF_MAP_TYPE_HASH, KEY.size, VALUE_SIZE, max_entries, BPF_F_NO_PREALLOC, 0, 0, name)


def elem_attr(fd: int, key: int, value: int = 0, flags: int = BPF_ANY) -> bytes:
    """`key` and `value` are addresses (of the key and value buffers); value 0 for delete."""
    return _ELEM.pack(fd, key, value, flags)


@dataclass(frozen=True, slots=True)
class IfindexSet:
    """A hash map of ifindexes (ours: its fd is ours to close). The kernel keeps it alive while a loaded
    program references it, also after this fd is closed."""

    fd: int
    map_id: int

    @classmethod
    def create(cls, name: str) -> IfindexSet:
        attr = create_attr(check_name(name, "map"))
        fd = bpf(Cmd.MAP_CREATE, buffer(attr), f"create BPF map {name}")
        try:
            return cls(fd, map_id(fd))
        except BpfError:
            os.close(fd)
            raise

    def add(self, ifindex: int) -> None:
        key, value = buffer(KEY.pack(ifindex)), buffer(b"\1")
        attr = elem_attr(self.fd, ctypes.addressof(key), ctypes.addressof(value))
        bpf(Cmd.MAP_UPDATE_ELEM, buffer(attr), f"add ifindex {ifindex} to BPF map {self.map_id}")

    def discard(self, ifindex: int) -> None:
        key = buffer(KEY.pack(ifindex))
        try:
            bpf(Cmd.MAP_DELETE_ELEM, buffer(elem_attr(self.fd, ctypes.addressof(key))), "delete from BPF map")
        except BpfError as exc:
            if exc.errno != errno.ENOENT:
                raise

    def __contains__(self, ifindex: object) -> bool:
        if not isinstance(ifindex, int):
            return False
        key, value = buffer(KEY.pack(ifindex)), buffer(b"\0")
        attr = elem_attr(self.fd, ctypes.addressof(key), ctypes.addressof(value))
        try:
            bpf(Cmd.MAP_LOOKUP_ELEM, buffer(attr), "look up in BPF map")
        except BpfError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise
        return True

    def close(self) -> None:
        os.close(self.fd)


def map_id(fd: int) -> int:
    out = buffer(_MAP_INFO.pack(0, 0))
    obj_info(fd, out, f"info of BPF map fd {fd}")
    return int(_MAP_INFO.unpack(out.raw)[1])
