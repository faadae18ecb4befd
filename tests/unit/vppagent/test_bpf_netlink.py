"""The tc part of the netlink layer without a kernel: what the clsact and bpf filter requests carry, and how a
dumped filter is read back."""

from __future__ import annotations

import errno
import socket

from services.vppagent.drivers.linux.netlink import tc
from services.vppagent.drivers.linux.netlink.codec import Message, attr, attr_nested, attr_str, attr_u32, parse_attrs
from services.vppagent.drivers.linux.netlink.constants import (
    NLM_F_CREATE,
    NLM_F_EXCL,
    RTM_DELTFILTER,
    RTM_NEWQDISC,
    RTM_NEWTFILTER,
    TCA_BPF_FD,
    TCA_BPF_FLAGS,
    TCA_BPF_ID,
    TCA_BPF_NAME,
    TCA_BPF_TAG,
    TCA_KIND,
    TCA_OPTIONS,
)
from services.vppagent.drivers.linux.netlink.records import BpfFilter


def test_clsact_qdisc_request() -> None:
    req = tc.clsact_add(7, "mnabc")
    family, index, handle, parent, info = tc.TCMSG.unpack_from(req.body)
    assert (req.kind, req.flags, req.tolerate) == (RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, frozenset({errno.EEXIST}))
    assert (family, index, handle, parent, info) == (0, 7, 0xFFFF0000, 0xFFFFFFF1, 0)
    assert parse_attrs(req.body, tc.TCMSG.size).text(TCA_KIND) == "clsact"
    assert str(req.what) == "add clsact on mnabc"


def test_bpf_filter_request_creates_or_replaces_a_direct_action_ingress_filter() -> None:
    req = tc.bpf_filter(7, "mnabc", fd=12, name="multinet-fast", priority=1, handle=1)
    _family, index, handle, parent, info = tc.TCMSG.unpack_from(req.body)
    assert (req.kind, req.flags) == (RTM_NEWTFILTER, NLM_F_CREATE)  # no EXCL: an existing filter is replaced
    assert (index, handle, parent) == (7, 1, 0xFFFFFFF2)  # clsact's ingress hook
    assert (info >> 16, info & 0xFFFF) == (1, socket.htons(0x0003))  # priority 1, every protocol (ETH_P_ALL)
    attrs = parse_attrs(req.body, tc.TCMSG.size)
    options = attrs.nested(TCA_OPTIONS)
    assert attrs.text(TCA_KIND) == "bpf"
    assert (options.u32(TCA_BPF_FD), options.text(TCA_BPF_NAME), options.u32(TCA_BPF_FLAGS)) == (12, "multinet-fast", 1)
    delete = tc.bpf_filter_delete(7, "mnabc", priority=1, handle=1)
    assert delete.kind == RTM_DELTFILTER and delete.body[:20] == req.body[:20]


def test_dumped_filters_are_read_back() -> None:
    head = tc.TCMSG.pack(0, 7, 1, tc.INGRESS, (1 << 16) | socket.htons(3))
    options = attr_nested(
        TCA_OPTIONS,
        attr_str(TCA_BPF_NAME, "multinet-fast"),
        attr_u32(TCA_BPF_ID, 99),
        attr(TCA_BPF_TAG, bytes.fromhex("340268bc416d9175")),
        attr_u32(TCA_BPF_FLAGS, 1),
    )
    full = Message(RTM_NEWTFILTER, 2, 1, head + attr_str(TCA_KIND, "bpf") + options)
    header_only = Message(RTM_NEWTFILTER, 2, 1, tc.TCMSG.pack(0, 7, 0, tc.INGRESS, 0) + attr_str(TCA_KIND, "bpf"))
    assert tc._filter(full) == BpfFilter(
        7, tc.INGRESS, 1, 1, "multinet-fast", 99, bytes.fromhex("340268bc416d9175"), True
    )
    assert tc._filter(header_only) is None
