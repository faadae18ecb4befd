"""The fast path's kernel interfaces without a kernel: qdiscs as dumped and announced over rtnetlink (which ports
are shaped), and the bpf(2) attribute blocks for tcx and the shaped-ports map, byte for byte against the layout of
`union bpf_attr` in include/uapi/linux/bpf.h (offsets written out here, not derived from the code's structs)."""

from __future__ import annotations

import struct

import pytest

from services.vppagent.drivers.linux.fastpath import maps, tcx
from services.vppagent.drivers.linux.fastpath.syscall import check_name
from services.vppagent.drivers.linux.netlink import tc
from services.vppagent.drivers.linux.netlink.codec import Message, attr_str, message, split_messages
from services.vppagent.drivers.linux.netlink.constants import (
    RTM_DELQDISC,
    RTM_NEWLINK,
    RTM_NEWQDISC,
    TCA_KIND,
)
from services.vppagent.drivers.linux.netlink.records import Qdisc

RTM_NEWTFILTER = 44  # shares the TC group with qdisc notifications


def qdisc_message(kind: int, index: int, qdisc: str, handle: int = 0, parent: int = 0xFFFFFFFF) -> Message:
    return Message(kind, 0, 0, tc.TCMSG.pack(0, index, handle, parent, 0) + attr_str(TCA_KIND, qdisc))


# ----------------------------------------------------------------------------------------------------- qdiscs
def test_a_dumped_qdisc_is_read_back() -> None:
    msg = qdisc_message(RTM_NEWQDISC, 7, "tbf", handle=0x10000, parent=0xFFFFFFFF)
    assert tc.parse(msg) == Qdisc(7, 0x10000, 0xFFFFFFFF, "tbf")
    ingress = qdisc_message(RTM_NEWQDISC, 7, "ingress", handle=0xFFFF0000, parent=0xFFFFFFF1)
    assert tc.parse(ingress) == Qdisc(7, 0xFFFF0000, 0xFFFFFFF1, "ingress")


def test_only_qdiscs_someone_added_make_a_port_shaped() -> None:
    found = [
        Qdisc(3, 0, 0xFFFFFFFF, "noqueue"),  # an up veth: what the kernel puts there
        Qdisc(4, 0, 0xFFFFFFFF, "noop"),  # a down one
        Qdisc(5, 0xFFFF0000, 0xFFFFFFF1, "ingress"),  # bandwidth's egress shaping hook (mirred to its ifb)
        Qdisc(6, 0x10000, 0xFFFFFFFF, "tbf"),  # bandwidth's ingress shaping
        Qdisc(6, 0, 0xFFFFFFFF, "noqueue"),
        Qdisc(8, 0xFFFF0000, 0xFFFFFFF1, "clsact"),  # anyone's classifiers
        Qdisc(9, 0x10000, 0xFFFFFFFF, "fq_codel"),
    ]
    assert tc.shaped(found) == {5, 6, 8, 9}
    assert tc.shaped([]) == set()


def test_notifications_name_the_devices_whose_qdiscs_changed() -> None:
    raw = b"".join(
        message(m.kind, 0, 0, m.payload)
        for m in (
            qdisc_message(RTM_NEWQDISC, 5, "ingress"),
            qdisc_message(RTM_DELQDISC, 6, "tbf"),
            qdisc_message(RTM_NEWTFILTER, 9, "u32"),  # a filter: same group, not a qdisc
            qdisc_message(RTM_NEWLINK, 10, "x"),
        )
    )
    assert tc.announced(split_messages(raw)) == {5, 6}
    assert tc.announced([]) == set()


# ----------------------------------------------------------------------------------------------------- bpf(2)
def u32(block: bytes, offset: int) -> int:
    return int(struct.unpack_from("=I", block, offset)[0])


def u64(block: bytes, offset: int) -> int:
    return int(struct.unpack_from("=Q", block, offset)[0])


def test_tcx_attach_block() -> None:
    """The BPF_PROG_ATTACH member: target_ifindex @0, attach_bpf_fd @4, attach_type @8, attach_flags @12,
    replace_bpf_fd @16, relative_fd @20, expected_revision @24 (u64): 32 bytes."""
    block = tcx.attach_attr(7, 12)
    assert len(block) == 32
    assert [u32(block, o) for o in range(0, 24, 4)] == [7, 12, 46, 0, 0, 0] and u64(block, 24) == 0
    replace = tcx.attach_attr(7, 12, replace_fd=13)
    assert [u32(replace, o) for o in (0, 4, 8, 12, 16)] == [7, 12, 46, 1 << 2, 13]  # BPF_F_REPLACE
    # detach names the program with the same block (tcx.detach sends attach_attr without a replace)


def test_tcx_query_block() -> None:
    """The BPF_PROG_QUERY member: target_ifindex @0, attach_type @4, query_flags @8, attach_flags @12,
    prog_ids @16 (u64), count @24, a hole @28, prog_attach_flags @32, link_ids @40, link_attach_flags @48,
    revision @56: 64 bytes; the kernel writes count and revision back."""
    block = tcx.query_attr(7, 0x7F00DEADBEE8, 64)
    assert len(block) == 64
    assert [u32(block, o) for o in (0, 4, 8, 12)] == [7, tcx.BPF_TCX_INGRESS, 0, 0]
    assert (u64(block, 16), u32(block, 24)) == (0x7F00DEADBEE8, 64)
    assert block[28:] == bytes(36)
    assert tcx.BPF_TCX_INGRESS == 46  # enum bpf_attach_type: after BPF_NETFILTER (45)


def test_map_blocks() -> None:
    """BPF_MAP_CREATE: map_type @0, key_size @4, value_size @8, max_entries @12, map_flags @16, inner_map_fd @20,
    numa_node @24, map_name[16] @28. BPF_MAP_*_ELEM: map_fd @0, key @8, value @16, flags @24 (u64s)."""
    block = maps.create_attr(b"mnfp_shaped")
    assert [u32(block, o) for o in range(0, 28, 4)] == [1, 4, 1, maps.MAX_ENTRIES, 1, 0, 0]  # hash, no prealloc
    assert block[28:44] == b"mnfp_shaped".ljust(16, b"\0") and len(block) == 44
    elem = maps.elem_attr(5, 0x1000, 0x2000)
    assert (u32(elem, 0), u32(elem, 4), u64(elem, 8), u64(elem, 16), u64(elem, 24)) == (5, 0, 0x1000, 0x2000, 0)


@pytest.mark.parametrize("name", ["mnfp_shaped", "mnfpp100004d2", "a.b"])
def test_object_names_the_kernel_accepts(name: str) -> None:
    assert check_name(name, "map") == name.encode()


@pytest.mark.parametrize("name", ["x" * 16, "has-dash", "späce"])
def test_object_names_the_kernel_refuses(name: str) -> None:
    with pytest.raises(ValueError, match="characters"):
        check_name(name, "map")
