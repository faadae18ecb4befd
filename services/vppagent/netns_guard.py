"""What the agent accepts as a pod's network namespace. A pod's netns path comes from the runtime (CNI_NETNS)
through netmgr and the catalog; whoever can write to the catalog must not be able to make the agent program the
node's own namespace (or the host's) as if it were a pod, nor hang it on a path that is not a namespace."""

from __future__ import annotations

import fcntl
import os
import stat

from .errors import InvalidSpec, NetnsNotFound

NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3): which kind of namespace a file refers to
CLONE_NEWNET = 0x40000000
_FORBIDDEN = ("/proc/self/ns/net", "/proc/1/ns/net")  # this agent's node, and the host


def check_pod_netns(path: str) -> None:
    try:
        # O_NONBLOCK: a FIFO at that path must not block the dataplane thread forever
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NetnsNotFound(f"network namespace {path} does not exist") from None
    except OSError as exc:
        raise InvalidSpec(f"network namespace {path} cannot be opened: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidSpec(f"{path} is not a network namespace")
        try:
            kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
        except OSError:
            raise InvalidSpec(f"{path} is not a network namespace") from None
        if kind != CLONE_NEWNET:
            raise InvalidSpec(f"{path} is a namespace, but not a network namespace")
        for forbidden in _FORBIDDEN:
            try:
                other = os.stat(forbidden)
            except OSError:  # e.g. PID 1 not inspectable from a container: that reference cannot be checked
                continue
            if (info.st_dev, info.st_ino) == (other.st_dev, other.st_ino):
                raise InvalidSpec(f"{path} is the node's (or the host's) own network namespace, not a pod's")
    finally:
        os.close(fd)
