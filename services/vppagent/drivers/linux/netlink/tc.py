"""Traffic control, read only: the qdiscs of the node's devices (what `tc qdisc show` dumps) and the notifications
the kernel multicasts when one is added or removed (group RTNLGRP_TC). The fast path uses them to stay off pod
ports that carry someone else's shaping (a chained `bandwidth` plugin's ingress qdisc and tbf)."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable

from . import notify
from .codec import Message, parse_attrs
from .constants import (
    AF_UNSPEC,
    RTM_DELQDISC,
    RTM_GETQDISC,
    RTM_NEWQDISC,
    RTNLGRP_TC,
    TCA_KIND,
)
from .records import Qdisc
from .socket import NetlinkSocket

TCMSG = struct.Struct("=BxxxiIII")  # family, ifindex, handle, parent, info
# What the kernel puts on a veth by itself: noqueue while it is up (veths are IFF_NO_QUEUE), noop while down.
DEFAULT_KINDS = frozenset({"noqueue", "noop"})
QDISC_EVENTS = frozenset({RTM_NEWQDISC, RTM_DELQDISC})


def qdiscs(sock: NetlinkSocket) -> list[Qdisc]:
    """Every qdisc of the netns: the kernel dumps them for all devices at once (it filters by none)."""
    return [parse(msg) for msg in sock.dump(RTM_GETQDISC, TCMSG.pack(AF_UNSPEC, 0, 0, 0, 0))]


def parse(msg: Message) -> Qdisc:
    _family, index, handle, parent, _info = TCMSG.unpack_from(msg.payload)
    return Qdisc(index, handle, parent, parse_attrs(msg.payload, TCMSG.size).text(TCA_KIND))


def shaped(found: Iterable[Qdisc]) -> set[int]:
    """Devices carrying a qdisc the kernel did not put there itself: an ingress or clsact qdisc, a root tbf..."""
    return {q.index for q in found if q.kind not in DEFAULT_KINDS}


def announced(messages: Iterable[Message]) -> set[int]:
    """Devices named by qdisc notifications (filter and class notifications share the group: ignored)."""
    return {TCMSG.unpack_from(m.payload)[1] for m in messages if m.kind in QDISC_EVENTS}


def subscribe() -> socket.socket:
    """A non-blocking socket, in the calling thread's netns, that receives the TC group's notifications."""
    return notify.subscribe(1 << (RTNLGRP_TC - 1))  # the legacy group bitmask: RTMGRP_TC
