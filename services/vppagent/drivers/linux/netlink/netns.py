"""Network namespace handles: open a socket inside another netns without moving the process there.

setns(2) changes the namespace of the calling thread only, so the thread switches, creates the socket (a
socket stays bound to the netns it was created in) and switches back, all before returning."""

from __future__ import annotations

import ctypes
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace behind `fd`."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextmanager
def entered(netns_path: str) -> Iterator[None]:
    """Run the body with the current thread inside `netns_path`; always switch back."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            setns(own)
    finally:
        os.close(own)


def socket_in(netns_path: str | None, factory: Callable[[], socket.socket]) -> socket.socket:
    if netns_path is None:
        return factory()
    with entered(netns_path):
        return factory()
