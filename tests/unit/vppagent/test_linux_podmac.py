"""Following the pod side's MAC, the pure parts: a link notification read as (ifindex, MAC), a socket's pending
notifications drained (ENOBUFS: unknown, re-read all), the plan pointed at the MACs in use. The watcher thread and
the repairs run against the real kernel in tests/netns/test_linux_driver.py."""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections.abc import Iterator
from typing import cast

import pytest

from services.vppagent.drivers.linux import plan, podmac
from services.vppagent.drivers.linux.netlink import codec
from services.vppagent.drivers.linux.netlink.constants import IFLA_ADDRESS, IFLA_IFNAME, RTM_DELLINK, RTM_NEWLINK
from services.vppagent.drivers.linux.netlink.messages import IFINFOMSG
from services.vppagent.model import NetworkSpec, PortRoute, PortSpec

BLUE = NetworkSpec("blue", 1234, 1400, (ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("fd00:1::/64")))


def link_message(kind: int, index: int, mac: bytes | None, name: str = "eth1") -> bytes:
    body = IFINFOMSG.pack(0, 1, index, 0, 0) + codec.attr_str(IFLA_IFNAME, name)
    if mac is not None:
        body += codec.attr(IFLA_ADDRESS, mac)
    return codec.message(kind, 0, 0, body)


def parsed(data: bytes) -> list[tuple[int, str] | None]:
    return [podmac.link_address(msg) for msg in codec.split_messages(data)]


def test_a_link_notification_reads_as_its_ifindex_and_mac() -> None:
    assert parsed(link_message(RTM_NEWLINK, 7, bytes.fromhex("02420000004a"))) == [(7, "02:42:00:00:00:4a")]


def test_notifications_without_a_new_address_read_as_nothing() -> None:
    assert parsed(link_message(RTM_DELLINK, 7, bytes.fromhex("02420000004a"))) == [None]  # a deleted link
    assert parsed(link_message(RTM_NEWLINK, 7, None)) == [None]  # no hardware address (e.g. a tunnel)
    assert parsed(link_message(RTM_NEWLINK, 7, b"")) == [None]
    assert parsed(codec.message(RTM_NEWLINK, 0, 0, b"\0" * 8)) == [None]  # truncated header


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A datagram pair standing in for a subscribed netlink socket: one datagram per recv, non-blocking."""
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    right.setblocking(False)
    try:
        yield left, right
    finally:
        left.close()
        right.close()


def test_draining_takes_every_pending_notification_the_last_mac_winning(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    left.send(link_message(RTM_NEWLINK, 7, bytes.fromhex("020000000001")))
    left.send(link_message(RTM_NEWLINK, 8, bytes.fromhex("020000000002")) + link_message(RTM_DELLINK, 9, b"\1" * 6))
    left.send(link_message(RTM_NEWLINK, 7, bytes.fromhex("020000000003")))
    assert podmac._drain(right) == {7: "02:00:00:00:00:03", 8: "02:00:00:00:00:02"}
    assert podmac._drain(right) == {}  # nothing pending: nothing changed


class Overflowed:
    """A socket that lost notifications (ENOBUFS once), then has one pending, then none."""

    def __init__(self, fail: int = errno.ENOBUFS) -> None:
        self.replies: list[bytes | OSError] = [
            OSError(fail, "lost"),
            link_message(RTM_NEWLINK, 7, bytes.fromhex("020000000001")),
        ]

    def recv(self, _size: int) -> bytes:
        if not self.replies:
            raise BlockingIOError
        reply = self.replies.pop(0)
        if isinstance(reply, OSError):
            raise reply
        return reply


def test_an_overflowed_socket_drains_as_unknown_and_other_failures_raise() -> None:
    assert podmac._drain(cast(socket.socket, Overflowed())) is None
    with pytest.raises(OSError, match="lost"):
        podmac._drain(cast(socket.socket, Overflowed(errno.EBADF)))


def test_a_failing_callback_is_logged_and_the_next_notification_still_handled(
    pair: tuple[socket.socket, socket.socket], caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[podmac.Links] = []

    def on_links(_netns: str, links: podmac.Links) -> None:
        seen.append(links)
        raise RuntimeError("driver failed")

    watch = podmac.LinkWatch(on_links)
    try:
        left, right = pair
        for mac in ("020000000001", "020000000002"):
            left.send(link_message(RTM_NEWLINK, 7, bytes.fromhex(mac)))
            with caplog.at_level(logging.ERROR):
                watch._take("/run/netns/p", right)  # what the thread does when the socket is readable
        assert seen == [{7: "02:00:00:00:00:01"}, {7: "02:00:00:00:00:02"}]
        assert caplog.text.count("following the links of /run/netns/p failed") == 2
    finally:
        watch.close()
    watch.close()  # again: nothing left to do


def ports_of(*specs: PortSpec) -> plan.HostObjects:
    out = plan.HostObjects()
    for spec in specs:
        plan.port_objects(spec, BLUE, out)
    return out


def spec(cid: str, *ips: str) -> PortSpec:
    interfaces = tuple(ipaddress.ip_interface(ip) for ip in ips)
    return PortSpec("blue", cid, "eth1", f"/run/netns/{cid}", interfaces, (PortRoute(BLUE.ranges[0]),), 1400)


def test_the_plan_points_a_ports_neighbours_at_the_mac_in_use_and_leaves_the_others() -> None:
    tuned, plain = spec("a", "10.1.0.1/32", "fd00:1::1/128"), spec("b", "10.1.0.2/32")
    objects = ports_of(tuned, plain)
    objects.add_neighbour(plan.NeighObj("mnvx1234", ipaddress.ip_address("fe80::1"), "aa:bb:cc:dd:ee:ff"))
    before = dict(objects.neighbours)
    plan.follow_macs(objects, {tuned.host_ifname: "02:42:00:00:00:42", plain.host_ifname: "", "mnvx1234": ""})
    changed = {key: n.mac for key, n in objects.neighbours.items() if before[key] != n}
    assert changed == {
        (tuned.host_ifname, ipaddress.ip_address("10.1.0.1")): "02:42:00:00:00:42",
        (tuned.host_ifname, ipaddress.ip_address("fd00:1::1")): "02:42:00:00:00:42",
    }
    assert objects.neighbours[(plain.host_ifname, ipaddress.ip_address("10.1.0.2"))].mac == plain.pod_mac
