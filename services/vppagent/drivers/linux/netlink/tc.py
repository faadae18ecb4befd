"""Traffic control over rtnetlink: the clsact qdisc and "bpf" classifiers on its ingress hook (what
`tc qdisc add dev X clsact` and `tc filter add dev X ingress bpf direct-action fd N` send), and their dump.

A filter is identified by device, parent, priority and handle; creating one that exists (NLM_F_CREATE without
NLM_F_EXCL) replaces its program atomically, so attaching is idempotent and also how a stale program is swapped."""

from __future__ import annotations

import errno
import socket
import struct

from .codec import Message, attr_nested, attr_str, attr_u32, parse_attrs
from .constants import (
    AF_UNSPEC,
    ETH_P_ALL,
    NLM_F_CREATE,
    NLM_F_EXCL,
    RTM_DELTFILTER,
    RTM_GETTFILTER,
    RTM_NEWQDISC,
    RTM_NEWTFILTER,
    TC_H_CLSACT,
    TC_H_CLSACT_HANDLE,
    TC_H_MIN_INGRESS,
    TCA_BPF_FD,
    TCA_BPF_FLAG_ACT_DIRECT,
    TCA_BPF_FLAGS,
    TCA_BPF_ID,
    TCA_BPF_NAME,
    TCA_BPF_TAG,
    TCA_KIND,
    TCA_OPTIONS,
)
from .records import BpfFilter
from .socket import NetlinkSocket, Request, What

TCMSG = struct.Struct("=BxxxiIII")  # family, ifindex, handle, parent, info
INGRESS = (TC_H_CLSACT & 0xFFFF0000) | TC_H_MIN_INGRESS  # TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS)
EXISTS_OK = frozenset({errno.EEXIST})
GONE_OK = frozenset({errno.ENOENT, errno.ENODEV, errno.EINVAL})


def _info(priority: int, protocol: int = ETH_P_ALL) -> int:
    """tcm_info of a filter: priority in the upper half, the ethertype it matches (network order) below."""
    return (priority << 16) | socket.htons(protocol)


def clsact_add(index: int, ifname: str) -> Request:
    """The clsact qdisc: ingress and egress hooks for classifiers, no queueing. One per device; EEXIST is fine."""
    body = TCMSG.pack(AF_UNSPEC, index, TC_H_CLSACT_HANDLE, TC_H_CLSACT, 0) + attr_str(TCA_KIND, "clsact")
    return Request(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, body, What("add clsact on {}", ifname), EXISTS_OK)


def bpf_filter(index: int, ifname: str, *, fd: int, name: str, priority: int, handle: int) -> Request:
    """A direct-action bpf classifier on the ingress hook running the program behind `fd` (create or replace)."""
    options = attr_nested(
        TCA_OPTIONS,
        attr_u32(TCA_BPF_FD, fd),
        attr_str(TCA_BPF_NAME, name),
        attr_u32(TCA_BPF_FLAGS, TCA_BPF_FLAG_ACT_DIRECT),
    )
    body = TCMSG.pack(AF_UNSPEC, index, handle, INGRESS, _info(priority)) + attr_str(TCA_KIND, "bpf") + options
    return Request(RTM_NEWTFILTER, NLM_F_CREATE, body, What("attach bpf {} on {} ingress", name, ifname))


def bpf_filter_delete(index: int, ifname: str, *, priority: int, handle: int) -> Request:
    body = TCMSG.pack(AF_UNSPEC, index, handle, INGRESS, _info(priority)) + attr_str(TCA_KIND, "bpf")
    return Request(RTM_DELTFILTER, 0, body, What("detach bpf from {} ingress", ifname), GONE_OK)


def ingress_filters(sock: NetlinkSocket, index: int) -> list[BpfFilter]:
    """The bpf classifiers on a device's ingress hook (none when it has no clsact qdisc). The kernel dumps
    filters per device only."""
    msgs = sock.dump(RTM_GETTFILTER, TCMSG.pack(AF_UNSPEC, index, 0, INGRESS, 0))
    return [f for f in (_filter(m) for m in msgs) if f is not None]


def _filter(msg: Message) -> BpfFilter | None:
    _family, index, handle, parent, info = TCMSG.unpack_from(msg.payload)
    attrs = parse_attrs(msg.payload, TCMSG.size)
    if attrs.text(TCA_KIND) != "bpf" or attrs.get(TCA_OPTIONS) is None:
        return None  # e.g. the per-priority header message that precedes a priority's filters
    options = attrs.nested(TCA_OPTIONS)
    return BpfFilter(
        index,
        parent,
        info >> 16,
        handle,
        options.text(TCA_BPF_NAME),
        options.u32(TCA_BPF_ID),
        options.get(TCA_BPF_TAG) or b"",
        bool(options.u32(TCA_BPF_FLAGS) & TCA_BPF_FLAG_ACT_DIRECT),
    )
