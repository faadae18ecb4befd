"""The pod's end of a VPP tap, inside the pod's netns: the linux driver's netlink pieces, reused as they are.

tap_create_v3 creates the interface in the netns with its name, MAC, MTU and IPv4 address. The rest is the same
as for a linux veth: every address (IPv6 with NODAD), the static neighbour for the link-local gateway (whose MAC is
the tap's VPP end, HOST_SIDE_MAC), and the routes (IPv4 ones onlink) -- see linux/pod.py."""

from __future__ import annotations

import enum
from typing import Protocol

from ...errors import DataplaneError, NetnsNotFound
from ...model import PortSpec
from ..linux import pod
from ..linux.netlink import dumps
from ..linux.netlink.socket import NetlinkError, NetlinkSocket


class LinkState(enum.Enum):
    ABSENT = "absent"
    OURS = "ours"  # present with the port's MAC: the host end of our tap
    FOREIGN = "foreign"  # the name is taken by something else


class PodSide(Protocol):
    def link_state(self, port: PortSpec) -> LinkState: ...

    def configure(self, port: PortSpec) -> None: ...

    def problems(self, port: PortSpec) -> list[str]: ...


class NetlinkPodSide:
    def _socket(self, port: PortSpec) -> NetlinkSocket:
        try:
            return NetlinkSocket(port.netns)
        except FileNotFoundError as exc:
            raise NetnsNotFound(f"network namespace {port.netns} does not exist") from exc

    def link_state(self, port: PortSpec) -> LinkState:
        with self._socket(port) as sock:
            link = dumps.link(sock, port.ifname)
        if link is None:
            return LinkState.ABSENT
        return LinkState.OURS if link.mac == port.pod_mac else LinkState.FOREIGN

    def configure(self, port: PortSpec) -> None:
        try:
            with self._socket(port) as sock:
                pod.configure(sock, port)
        except NetlinkError as exc:
            raise DataplaneError(str(exc)) from exc

    def problems(self, port: PortSpec) -> list[str]:
        with self._socket(port) as sock:
            return pod.problems(sock, port)
