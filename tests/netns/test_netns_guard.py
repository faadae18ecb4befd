"""The agent accepts only real pod network namespaces: not its own node's, not the host's, not a FIFO (which
would block the dataplane thread) or any other file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.vppagent.errors import InvalidSpec, NetnsNotFound
from services.vppagent.netns_guard import check_pod_netns
from tests.fixtures.netns import Namespaces, inside

pytestmark = pytest.mark.netns


def test_a_pod_netns_is_accepted(netns: Namespaces) -> None:
    node, pod = netns.new("node"), netns.new("pod")
    with inside(node):
        check_pod_netns(netns.path(pod))


def test_the_nodes_own_and_the_hosts_namespaces_are_refused(netns: Namespaces) -> None:
    node = netns.new("node")
    with inside(node):
        with pytest.raises(InvalidSpec, match="own network namespace"):
            check_pod_netns(netns.path(node))
        if os.access("/proc/1/ns/net", os.R_OK):  # not inspectable in every sandbox
            with pytest.raises(InvalidSpec, match="own network namespace"):
                check_pod_netns("/proc/1/ns/net")


def test_files_that_are_not_network_namespaces_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InvalidSpec, match="not a network namespace"):
        check_pod_netns(str(fifo))  # returns at once: opened non-blocking
    plain = tmp_path / "plain"
    plain.write_text("x")
    with pytest.raises(InvalidSpec, match="not a network namespace"):
        check_pod_netns(str(plain))
    with pytest.raises(InvalidSpec, match="not a network namespace"):
        check_pod_netns("/proc/self/ns/uts")
    with pytest.raises(NetnsNotFound):
        check_pod_netns(str(tmp_path / "missing"))
