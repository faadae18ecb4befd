"""The linux driver against the real kernel: a node netns, pod netns, real TCP between them.

Isolation is proven with packets: the same address on blue and red, each reached only by its own network's
pods; a pod with a default route still cannot reach another network or the node's own addresses."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import pathlib
from collections.abc import Iterator

import pytest

from services.vppagent.drivers.linux.driver import LinuxDriver
from services.vppagent.drivers.linux.fastpath import control
from services.vppagent.errors import DataplaneError, InterfaceExists, NetnsNotFound
from services.vppagent.model import DesiredNode, NetworkSpec, PortRoute, PortSpec
from tests.fixtures.lab import wait_for
from tests.fixtures.netns import Namespaces, inside, sh
from tests.fixtures.traffic import Servers, ask

pytestmark = pytest.mark.netns
BLUE = NetworkSpec("blue", 1234, 1400, (ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("fd00:1::/64")))
RED = NetworkSpec("red", 1235, 1400, (ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("fd00:1::/64")))
DEFAULTS = (PortRoute(ipaddress.ip_network("0.0.0.0/0")), PortRoute(ipaddress.ip_network("::/0")))


def port(net: NetworkSpec, pod_ns: str, ip4: str, ip6: str = "", default_route: bool = False) -> PortSpec:
    ips = [ipaddress.ip_interface(f"{ip4}/32")] + ([ipaddress.ip_interface(f"{ip6}/128")] if ip6 else [])
    routes = tuple(PortRoute(r) for r in net.ranges) + (DEFAULTS if default_route else ())
    return PortSpec(net.name, f"c-{pod_ns}", "eth1", f"/var/run/netns/{pod_ns}", tuple(ips), routes, net.mtu)


@pytest.fixture
def node(netns: Namespaces, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, LinuxDriver]]:
    monkeypatch.setenv(control.ENV, "auto")  # what the tests expect of the fast path, whatever the shell says
    name = netns.new("node")
    with inside(name):
        driver = LinuxDriver()
        driver.prepare()
    try:
        yield name, driver
    finally:
        with inside(name):
            driver.close()


def attach(node: tuple[str, LinuxDriver], p: PortSpec, net: NetworkSpec) -> None:
    with inside(node[0]):
        node[1].attach(p, net)
    assert node[1].settle_fastpath()  # the fast path's program goes on in the background


def test_same_address_on_two_networks_each_reaches_only_its_own(
    node: tuple[str, LinuxDriver], netns: Namespaces, whoami: Servers
) -> None:
    pods = {name: netns.new(name) for name in ("ba", "bb", "ra", "rb")}
    attach(node, port(BLUE, pods["ba"], "10.1.0.1", "fd00:1::1"), BLUE)
    attach(node, port(BLUE, pods["bb"], "10.1.0.2", "fd00:1::2"), BLUE)
    attach(node, port(RED, pods["ra"], "10.1.0.1", "fd00:1::1"), RED)
    attach(node, port(RED, pods["rb"], "10.1.0.2", "fd00:1::2"), RED)
    for name, ns in pods.items():
        whoami.start(ns, name)
    assert ask(pods["bb"], "10.1.0.1") == "ba"
    assert ask(pods["rb"], "10.1.0.1") == "ra"
    assert ask(pods["ba"], "10.1.0.2") == "bb"
    assert ask(pods["ra"], "10.1.0.2") == "rb"
    assert ask(pods["rb"], "fd00:1::1") == "ra"
    assert ask(pods["bb"], "fd00:1::1") == "ba"


def test_no_path_between_networks_or_to_the_node(
    node: tuple[str, LinuxDriver], netns: Namespaces, whoami: Servers
) -> None:
    blue = NetworkSpec("blue", 1234, 1400, (ipaddress.ip_network("10.1.0.0/16"),))
    red = NetworkSpec("red", 1235, 1400, (ipaddress.ip_network("10.2.0.0/16"),))
    b, r = netns.new("b"), netns.new("r")
    attach(node, port(blue, b, "10.1.0.1", default_route=True), blue)
    attach(node, port(red, r, "10.2.0.1", default_route=True), red)
    whoami.start(r, "red")
    # the node itself holds an address inside blue's range and listens on it
    sh(f"ip -n {node[0]} link set lo up && ip -n {node[0]} addr add 10.1.0.99/32 dev lo")
    whoami.start(node[0], "node")
    assert ask(node[0], "10.2.0.1") == "ERR TimeoutError" or ask(node[0], "10.2.0.1").startswith("ERR")
    assert ask(b, "10.2.0.1").startswith("ERR"), "blue reached red"
    assert ask(b, "10.1.0.99").startswith("ERR"), "a pod reached the node's own address"
    assert ask(r, "10.1.0.99").startswith("ERR")


def test_attach_is_idempotent_and_restart_reconcile_changes_nothing(
    node: tuple[str, LinuxDriver], netns: Namespaces
) -> None:
    pod = netns.new("p")
    p = port(BLUE, pod, "10.1.0.7", "fd00:1::7")
    attach(node, p, BLUE)
    attach(node, p, BLUE)
    desired = DesiredNode(node="n", networks={"blue": BLUE}, ports={p.key: p})
    with inside(node[0]):
        first = node[1].reconcile(desired)
        assert node[1].settle_fastpath()
        restarted = LinuxDriver()
        try:
            second = restarted.reconcile(desired)
            assert restarted.check(p, BLUE) == []
            # the earlier driver's programs were handed over to the restarted one (its own map): CHECK by the
            # earlier one says so, and its next resync takes them back, again without counting a change
            assert node[1].check(p, BLUE) == (
                [f"fast-path program missing or outdated on {p.host_ifname}"] if node[1].fastpath else []
            )
            third = node[1].reconcile(desired)
        finally:
            restarted.close()
    assert first.changed == 0, first
    assert second.changed == 0, second
    assert third.changed == 0, third
    assert not first.problems and not second.problems and not third.problems
    with inside(node[0]):
        assert node[1].check(p, BLUE) == []


def test_reconcile_removes_everything_it_owns_and_nothing_else(
    node: tuple[str, LinuxDriver], netns: Namespaces
) -> None:
    pod = netns.new("p")
    p = port(BLUE, pod, "10.1.0.7")
    attach(node, p, BLUE)
    sh(f"ip -n {node[0]} link set lo up && ip -n {node[0]} route add 10.77.0.0/16 dev lo table 100")  # not ours
    with inside(node[0]):
        report = node[1].reconcile(DesiredNode(node="n"))
    assert report.ports_removed == 1
    rules = sh(f"ip -n {node[0]} rule").stdout
    assert "proto 109" not in rules
    routes = sh(f"ip -n {node[0]} -j route show table all").stdout
    assert not [r for r in json.loads(routes) if r.get("protocol") == "109"]
    assert "10.77.0.0/16" in sh(f"ip -n {node[0]} route show table 100").stdout
    assert sh(f"ip -n {pod} link show eth1", check=False).returncode != 0


def test_interface_name_taken_is_refused_and_leaves_nothing(node: tuple[str, LinuxDriver], netns: Namespaces) -> None:
    pod = netns.new("p")
    sh(f"ip -n {pod} link add eth1 type veth peer name other")
    with inside(node[0]), pytest.raises(InterfaceExists):
        node[1].attach(port(BLUE, pod, "10.1.0.8"), BLUE)
    assert "mn" not in sh(f"ip -n {node[0]} -br link").stdout
    assert "proto 109" not in sh(f"ip -n {node[0]} rule").stdout


def test_missing_netns_and_detach_after_netns_is_gone(node: tuple[str, LinuxDriver], netns: Namespaces) -> None:
    with inside(node[0]), pytest.raises(NetnsNotFound):
        node[1].attach(port(BLUE, "does-not-exist", "10.1.0.9"), BLUE)
    pod = netns.new("p")
    p = port(BLUE, pod, "10.1.0.9")
    attach(node, p, BLUE)
    netns.delete(pod)
    with inside(node[0]):
        node[1].detach(p)
        node[1].finish_detach(p)
        assert node[1].detach(p) is False  # again: nothing left, still fine
        node[1].finish_detach(p)
    assert "proto 109" not in sh(f"ip -n {node[0]} rule").stdout


def test_kernel_refusals_surface_as_dataplane_errors(
    node: tuple[str, LinuxDriver], netns: Namespaces, tmp_path: pathlib.Path
) -> None:
    """A path that is not a network namespace: the kernel refuses to enter it; attach and check say so as the
    agent's own error (which its RPCs turn into a CNI error), never as a stray OSError."""
    not_a_netns = tmp_path / "plain-file"
    not_a_netns.write_text("")
    p = dataclasses.replace(port(BLUE, "x", "10.1.0.10"), netns=str(not_a_netns))
    with inside(node[0]):
        with pytest.raises(DataplaneError) as attaching:
            node[1].attach(p, BLUE)
        with pytest.raises(DataplaneError, match="check eth1 of c-x") as checking:
            node[1].check(p, BLUE)
    assert not isinstance(attaching.value, NetnsNotFound)
    assert isinstance(checking.value.__cause__, OSError)
    assert "mn" not in sh(f"ip -n {node[0]} -br link").stdout


def test_detach_frees_the_name_at_once_and_deletes_the_pair_after(
    node: tuple[str, LinuxDriver], netns: Namespaces
) -> None:
    pod = netns.new("p")
    p = port(BLUE, pod, "10.1.0.10")
    attach(node, p, BLUE)
    with inside(node[0]):
        assert node[1].detach(p) is True
    assert sh(f"ip -n {pod} link show eth1", check=False).returncode != 0  # the name is free for a new ADD
    assert "proto 109" not in sh(f"ip -n {node[0]} rule").stdout
    attach(node, p, BLUE)  # the same attachment again, before the deferred deletion: works
    with inside(node[0]):
        node[1].detach(p)
        node[1].finish_detach(p)
    assert sh(f"ip -n {pod} -br link").stdout.count("@") == 0  # no veth left in the pod
    assert p.host_ifname not in sh(f"ip -n {node[0]} -br link").stdout


def two_legged_pod(
    node: tuple[str, LinuxDriver], netns: Namespaces, whoami: Servers, red_address: str
) -> tuple[str, str, str, PortSpec]:
    """A pod serving on blue (10.1.0.50, eth1) and red (`red_address`, eth2), and a client on each network (both
    10.1.0.1): (pod, blue client, red client, red leg)."""
    multi, blue_client, red_client = netns.new("m"), netns.new("bc"), netns.new("rc")
    attach(node, port(BLUE, blue_client, "10.1.0.1"), BLUE)
    attach(node, port(RED, red_client, "10.1.0.1"), RED)
    blue_leg = port(BLUE, multi, "10.1.0.50")
    red_leg = PortSpec(
        "red",
        blue_leg.container_id,
        "eth2",
        blue_leg.netns,
        (ipaddress.ip_interface(f"{red_address}/32"),),
        tuple(PortRoute(r) for r in RED.ranges),
        RED.mtu,
    )
    attach(node, blue_leg, BLUE)
    attach(node, red_leg, RED)
    whoami.start(multi, "multi")
    return multi, blue_client, red_client, red_leg


def test_multi_legged_pod_answers_each_network_through_its_own_leg(
    node: tuple[str, LinuxDriver], netns: Namespaces, whoami: Servers
) -> None:
    """blue and red share 10.1.0.0/16; a pod on both must reply to each client through the leg the request
    came in on, although both legs route the same range (per-interface tables + source rules in the pod)."""
    _, blue_client, red_client, _ = two_legged_pod(node, netns, whoami, "10.1.0.60")
    assert ask(blue_client, "10.1.0.50") == "multi"
    assert ask(red_client, "10.1.0.60") == "multi"
    assert ask(blue_client, "10.1.0.60").startswith("ERR")  # red's leg is not on blue


def test_multi_legged_pod_with_the_same_address_on_both_legs(
    node: tuple[str, LinuxDriver], netns: Namespaces, whoami: Servers
) -> None:
    """Both networks allocated 10.1.0.50 to the pod: the source cannot tell the legs apart, so replies follow
    the leg the connection came in on (conntrack mark → per-leg table); detaching one leg leaves the other
    working and removes the leg's pod-side rules."""
    multi, blue_client, red_client, red_leg = two_legged_pod(node, netns, whoami, "10.1.0.50")
    for _ in range(3):  # each new connection, from either network
        assert ask(blue_client, "10.1.0.50") == "multi"
        assert ask(red_client, "10.1.0.50") == "multi"
    assert sh(f"ip netns exec {blue_client} ping -c1 -W1 10.1.0.50").returncode == 0
    assert sh(f"ip netns exec {red_client} ping -c1 -W1 10.1.0.50").returncode == 0
    with inside(node[0]):
        node[1].detach(red_leg)
        node[1].finish_detach(red_leg)
    assert ask(blue_client, "10.1.0.50") == "multi"
    rules = sh(f"ip -n {multi} rule").stdout
    assert rules.count("proto 109") == 1  # the blue leg's IPv4 source rule only: no mark rules with one leg
    assert "fwmark" not in rules
    assert "multinet" not in sh(f"ip netns exec {multi} nft list tables").stdout


TUNED_MAC = "02:42:00:00:00:42"


def neighbour_macs(ns: str, dev: str) -> dict[str, str]:
    """The node's multinet-owned (proto 109) permanent neighbour entries on `dev`: address → MAC."""
    entries = json.loads(sh(f"ip -n {ns} -j neigh show dev {dev} nud permanent").stdout or "[]")
    return {n["dst"]: n.get("lladdr", "") for n in entries if str(n.get("protocol", "")) in ("109", "0x6d")}


def test_the_node_follows_a_pod_mac_a_chained_plugin_changed(
    node: tuple[str, LinuxDriver], netns: Namespaces, whoami: Servers
) -> None:
    """`tuning` changes the pod interface's MAC after multinet's ADD: the node's static neighbour entries (IPv4
    and IPv6) follow as the pod netns announces it, so the pod keeps answering; a full resync or a diff apply
    afterwards never goes back to the MAC multinet chose. The driver tells its listener (the agent, which reports
    to the catalog) as the change is seen and again at each full resync; never of a pod that kept its MAC."""
    pod, client = netns.new("p"), netns.new("c")
    p = port(BLUE, pod, "10.1.0.7", "fd00:1::7")
    c = port(BLUE, client, "10.1.0.8", "fd00:1::8")
    told: list[tuple[tuple[str, str, str], str, str]] = []
    node[1].report_pod_macs(lambda key, netns, mac: told.append((key, netns, mac)))
    attach(node, p, BLUE)
    attach(node, c, BLUE)
    whoami.start(pod, "pod")
    assert ask(client, "10.1.0.7") == "pod"
    assert neighbour_macs(node[0], p.host_ifname) == {"10.1.0.7": p.pod_mac, "fd00:1::7": p.pod_mac}
    sh(f"ip -n {pod} link set eth1 address {TUNED_MAC}")
    tuned = {"10.1.0.7": TUNED_MAC, "fd00:1::7": TUNED_MAC}
    wait_for(lambda: neighbour_macs(node[0], p.host_ifname) == tuned, 5.0, "the node's neighbours to follow")
    # the listener is told last, after the pod's gateway neighbours are back: from then on the pod answers
    wait_for(lambda: told == [(p.key, p.netns, TUNED_MAC)], 5.0, "the listener to be told")
    assert ask(client, "10.1.0.7") == "pod"
    assert ask(client, "fd00:1::7") == "pod"
    assert sh(f"ip netns exec {client} ping -c1 -W1 10.1.0.7").returncode == 0
    desired = DesiredNode(node="n", networks={"blue": BLUE}, ports={p.key: p, c.key: c})
    with inside(node[0]):
        full = node[1].reconcile(desired)
        diff = node[1].apply(desired)
        # CHECK with the MAC multinet chose sees the change on both sides; with the chain's final MAC, nothing
        assert node[1].check(p, BLUE) == [
            f"interface eth1 has MAC {TUNED_MAC}, expected {p.pod_mac}",
            *(f"neighbour {ip} on {p.host_ifname} missing or not {p.pod_mac}" for ip in ("10.1.0.7", "fd00:1::7")),
        ]
        assert node[1].check(dataclasses.replace(p, mac=TUNED_MAC), BLUE) == []
    assert told == [(p.key, p.netns, TUNED_MAC)] * 2  # the full resync told again (level-triggered); the diff apply not
    assert full.changed == 0 and not full.problems, full  # the watcher already repaired: nothing left to do
    assert diff.changed == 0 and not diff.problems, diff
    assert neighbour_macs(node[0], p.host_ifname) == tuned
    assert ask(client, "10.1.0.7") == "pod"
    sh(f"ip -n {pod} link set eth1 address 02:42:00:00:00:43")  # and again: still followed after the resync
    wait_for(lambda: set(neighbour_macs(node[0], p.host_ifname).values()) == {"02:42:00:00:00:43"}, 5.0, "again")
    wait_for(lambda: len(told) == 3, 5.0, "the listener to be told again")
    assert told[2] == (p.key, p.netns, "02:42:00:00:00:43")
    assert ask(client, "fd00:1::7") == "pod"
    assert neighbour_macs(node[0], c.host_ifname) == {"10.1.0.8": c.pod_mac, "fd00:1::8": c.pod_mac}
    # the catalog has since recorded the pod's MAC (the agent reported it): a full resync tells nothing more,
    # and still re-asserts the pod's gateway neighbours (removed here by hand: nothing else would bring them back)
    recorded = dataclasses.replace(p, mac="02:42:00:00:00:43")
    sh(f"ip -n {pod} neigh del 169.254.1.1 dev eth1")
    told.clear()
    with inside(node[0]):
        again = node[1].reconcile(DesiredNode(node="n", networks={"blue": BLUE}, ports={p.key: recorded, c.key: c}))
    assert told == [] and not again.problems, again
    assert "169.254.1.1 lladdr" in sh(f"ip -n {pod} neigh show dev eth1").stdout
    assert ask(client, "10.1.0.7") == "pod"


def test_a_restarted_driver_picks_up_a_mac_changed_while_none_watched(
    node: tuple[str, LinuxDriver], netns: Namespaces, whoami: Servers
) -> None:
    """The level-triggered half: the MAC changes while no driver runs; the new driver's first full resync reads
    it from the pod side, repairs the neighbours and watches the pod from then on. Detach closes the watch."""
    pod, client = netns.new("p"), netns.new("c")
    p = port(BLUE, pod, "10.1.0.7", "fd00:1::7")
    c = port(BLUE, client, "10.1.0.8", "fd00:1::8")
    attach(node, p, BLUE)
    attach(node, c, BLUE)
    with inside(node[0]):
        node[1].close()  # the agent stops (closing again at teardown is harmless)
    whoami.start(pod, "pod")
    sh(f"ip -n {pod} link set eth1 address {TUNED_MAC}")
    assert ask(client, "10.1.0.7").startswith("ERR")  # nobody follows: the pod drops what the node sends it
    desired = DesiredNode(node="n", networks={"blue": BLUE}, ports={p.key: p, c.key: c})
    with inside(node[0]):
        restarted = LinuxDriver()
    try:
        tuned_port = dataclasses.replace(p, mac=TUNED_MAC)  # what CNI CHECK asks with the chain's final result
        with inside(node[0]):
            stale = [s for s in restarted.check(tuned_port, BLUE) if not s.startswith("fast-path")]  # not its own yet
            assert stale == [
                f"neighbour {ip} on {p.host_ifname} missing or not {TUNED_MAC}" for ip in ("10.1.0.7", "fd00:1::7")
            ]
            report = restarted.reconcile(desired)
            assert restarted.check(tuned_port, BLUE) == []
        assert report.added == 2 and report.removed == 0 and not report.problems, report  # the two neighbours
        assert neighbour_macs(node[0], p.host_ifname) == {"10.1.0.7": TUNED_MAC, "fd00:1::7": TUNED_MAC}
        assert ask(client, "10.1.0.7") == "pod"
        assert ask(client, "fd00:1::7") == "pod"
        sh(f"ip -n {pod} link set eth1 address 02:42:00:00:00:43")
        wait_for(
            lambda: set(neighbour_macs(node[0], p.host_ifname).values()) == {"02:42:00:00:00:43"}, 5.0, "the watch"
        )
        assert ask(client, "10.1.0.7") == "pod"
        assert restarted._pod_macs.watch.netns() == {netns.path(pod), netns.path(client)}
        with inside(node[0]):
            restarted.detach(p)
            restarted.finish_detach(p)
        assert restarted._pod_macs.watch.netns() == {netns.path(client)}
    finally:
        with inside(node[0]):
            restarted.close()


def test_a_pod_netns_that_disappears_is_let_go_at_the_next_resync(
    node: tuple[str, LinuxDriver], netns: Namespaces
) -> None:
    """A watch holds its netns (a socket keeps it alive): once the pod's netns is deleted without a DEL, the next
    full resync closes the watch, the kernel frees the netns and its veth, and the port is reported as missing;
    the thread lives on and follows the other pods."""
    gone, stays = netns.new("g"), netns.new("s")
    g, s = port(BLUE, gone, "10.1.0.7"), port(BLUE, stays, "10.1.0.8")
    attach(node, g, BLUE)
    attach(node, s, BLUE)
    netns.delete(gone)
    desired = DesiredNode(node="n", networks={"blue": BLUE}, ports={g.key: g, s.key: s})
    with inside(node[0]):
        node[1].reconcile(desired)
    assert node[1]._pod_macs.watch.netns() == {netns.path(stays)}

    def freed() -> bool:
        return sh(f"ip -n {node[0]} link show {g.host_ifname}", check=False).returncode != 0

    wait_for(freed, 5.0, "the deleted netns's veth to go")
    with inside(node[0]):
        again = node[1].reconcile(desired)
    assert [problem for problem in again.problems if "does not exist" in problem], again
    sh(f"ip -n {stays} link set eth1 address {TUNED_MAC}")
    wait_for(lambda: neighbour_macs(node[0], s.host_ifname) == {"10.1.0.8": TUNED_MAC}, 5.0, "the other pod")
