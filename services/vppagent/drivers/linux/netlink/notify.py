"""Kernel notifications: a non-blocking rtnetlink socket subscribed to multicast groups, and draining what is
pending on it. Used by the threads that react to changes the kernel announces (qdiscs on the node, links in pods).

A socket whose receive buffer overflowed loses notifications (ENOBUFS): the reader is told, so it can read the
whole state back instead."""

from __future__ import annotations

import errno
import socket

from .codec import Message, split_messages
from .constants import NETLINK_ROUTE

RECV_SIZE = 1 << 16


def subscribe(groups: int) -> socket.socket:
    """A socket in the calling thread's netns receiving the legacy group bitmask `groups` (e.g. RTMGRP_LINK)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK, NETLINK_ROUTE)
    try:
        sock.bind((0, groups))
    except OSError:
        sock.close()
        raise
    return sock


def drain(sock: socket.socket) -> tuple[list[Message], bool]:
    """Every notification pending, and whether some were lost since the last drain."""
    messages: list[Message] = []
    lost = False
    while True:
        try:
            data = sock.recv(RECV_SIZE)
        except BlockingIOError:
            return messages, lost
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise
            lost = True
            continue
        messages.extend(split_messages(data))
