"""Creating a pod port's veth pair: the host end in the node, the pod end created directly in the pod netns."""

from __future__ import annotations

import errno
import os

from ...errors import InterfaceExists
from ...model import HOST_SIDE_MAC, PortSpec
from .netlink import dumps, messages
from .netlink.socket import NetlinkSocket


def ensure_veth(host_sock: NetlinkSocket, pod_sock: NetlinkSocket, port: PortSpec) -> int:
    """Create the pair unless our own pair is already there; returns the host end's index. An interface of that
    name that is not ours is never touched (CNI: ADD fails if the name exists). Ours: its peer is our host end
    (not its MAC: a chained plugin may have changed that since)."""
    existing = dumps.link(pod_sock, port.ifname)
    host = dumps.link(host_sock, port.host_ifname)
    if existing is not None and (host is None or existing.peer_index != host.index):
        raise InterfaceExists(f"interface {port.ifname} already exists in {port.netns}")
    if existing is not None and host is not None:
        return host.index  # our own pair from an earlier ADD: only the configuration is re-applied
    if host is not None:
        host_sock.execute([messages.link_delete(port.host_ifname)])  # half-made pair left by a crash
    fd = os.open(port.netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        create = messages.veth_create(port.host_ifname, HOST_SIDE_MAC, port.ifname, port.pod_mac, fd, port.mtu)
        created, marked = host_sock.execute_all([create, messages.link_alias(port.host_ifname, port.alias)])
    finally:
        os.close(fd)
    if created.error == errno.EEXIST:
        raise InterfaceExists(f"interface {port.ifname} already exists in {port.netns}")
    created.raise_for_error()
    marked.raise_for_error()
    made = dumps.link(host_sock, port.host_ifname)
    if made is None:
        raise InterfaceExists(f"{port.host_ifname} vanished right after being created")
    return made.index


def retired_name(port: PortSpec) -> str:
    """Where a detached pod end waits for its deletion (unique per port, never a name a runtime would ask for)."""
    return "mnx" + port.host_ifname[2:]
