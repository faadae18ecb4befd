"""Issue 3 on the local lab (`multinetctl lab`): real agents, CNI front doors and shared services as separate
processes talking gRPC over the fabric, pods attached through the real `multinet` plugin, real VXLAN."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from multinetctl.lab.procs import running
from multinetctl.lab.state import CATALOG_PORT
from services.common import tls
from tests.fixtures.lab import Lab, wait_for
from tests.fixtures.netns import sh
from tests.fixtures.traffic import Servers, ask

pytestmark = pytest.mark.integration
DIAL = Path(__file__).resolve().parents[2] / "tools" / "dial_catalog.py"


def address(pod: dict[str, object], network: str) -> str:
    for iface in pod["interfaces"]:  # type: ignore[attr-defined]
        if iface["network"] == network:
            return str(iface["ips"][0]).split("/")[0]
    raise AssertionError(f"{pod} has no {network} interface")


def answers(lab: Lab, client: str, target: str, expected: str, timeout: float = 10.0) -> None:
    wait_for(
        lambda: ask(lab.pod_netns(client), target, timeout=0.5) == expected,
        timeout,
        f"{client} to reach {expected} at {target}",
    )


def test_up_reports_what_it_made_and_ps_lists_processes(lab: Lab) -> None:
    summary = lab.up(nodes=3)
    assert [n["name"] for n in summary["nodes"]] == ["node1", "node2", "node3"]
    assert len({n["underlay"] for n in summary["nodes"]}) == 3
    roles = sorted((p["node"], p["role"]) for p in summary["processes"])
    assert roles == [
        ("", "catalog"),
        ("", "ipam"),
        ("node1", "agent"),
        ("node1", "cni"),
        ("node2", "agent"),
        ("node2", "cni"),
        ("node3", "agent"),
        ("node3", "cni"),
    ]
    assert all(p["state"] == "running" for p in summary["processes"])
    assert lab.ctl("ps").stdout.count("running") == 8
    nodes = json.loads(lab.multinetctl("get", "nodes", "-o", "json"))
    assert sorted(n["name"] for n in nodes) == ["node1", "node2", "node3"]


def test_services_on_the_fabric_take_only_mutual_tls_from_the_labs_own_ca(lab: Lab, tmp_path: Path) -> None:
    """The agents and front doors reach catalog and IPAM over TCP on the fabric (the lab works: the other tests);
    a client on a node without the lab's certificate gets nothing: plaintext, TLS without a client certificate,
    and a certificate from another CA are all refused. The nodes hold the nodes' (client-only) certificate."""
    summary = lab.up(nodes=1)
    target = f"{summary['fabric']['services']}:{CATALOG_PORT}"
    mine = lab.state_dir / "tls" / tls.NODES
    assert (mine / "tls.key").stat().st_mode & 0o777 == 0o600
    assert not tls.load(mine).serves and tls.load(lab.state_dir / "tls" / tls.SERVICES).serves
    for proc in summary["processes"]:  # each process holds its role's material
        role = tls.SERVICES if proc["role"] in ("catalog", "ipam") else tls.NODES
        environ = Path(f"/proc/{proc['pid']}/environ").read_bytes().split(b"\0")
        assert f"{tls.ENV}={lab.state_dir / 'tls' / role}".encode() in environ, proc
    tls.generate(tmp_path / "other")
    other = tmp_path / "other" / tls.NODES

    def dial(*opts: str) -> str:
        out = sh(f"ip netns exec {lab.node_netns('node1')} {sys.executable} {DIAL} {target} {' '.join(opts)}")
        return out.stdout.strip()

    with_ca = ("--ca", str(mine / "ca.crt"))
    assert dial(*with_ca, "--cert", str(mine / "tls.crt"), "--key", str(mine / "tls.key")) == "ok"
    assert dial() == "UNAVAILABLE"  # plaintext
    assert dial(*with_ca) == "UNAVAILABLE"  # no client certificate
    assert dial(*with_ca, "--cert", str(other / "tls.crt"), "--key", str(other / "tls.key")) == "UNAVAILABLE"
    mine_cert = ("--cert", str(mine / "tls.crt"), "--key", str(mine / "tls.key"))
    assert dial("--ca", str(other / "ca.crt"), *mine_cert) == "UNAVAILABLE"  # a client that trusts another CA


def test_tunnel_receive_steering_follows_the_agents_setting_also_across_restarts(lab: Lab) -> None:
    """MULTINET_TUNNEL_RPS is applied to the tunnels the agent makes, and a restarted agent with another setting
    rewrites what the earlier one left (off: the kernel's 0)."""
    lab.env["MULTINET_TUNNEL_RPS"] = "1"
    lab.up(nodes=1)
    node1 = lab.node_netns("node1")

    def steering() -> str:
        return sh(f"ip netns exec {node1} cat /sys/class/net/mnvx1234/queues/rx-0/rps_cpus").stdout.strip()

    wait_for(lambda: steering().strip("0,") == "1", 10, "the tunnel's receive steering")
    lab.ctl("stop", "node1", "--role", "agent")
    lab.env.pop("MULTINET_TUNNEL_RPS")
    lab.ctl("start", "node1", "--role", "agent")
    wait_for(lambda: steering().strip("0,") == "", 10, "the restarted agent to turn the steering off")


def test_same_addresses_on_two_networks_across_nodes(lab: Lab, whoami: Servers) -> None:
    lab.up(nodes=3)
    blue_a, red_a = lab.run_pod("blue-a", "node1", "blue"), lab.run_pod("red-a", "node1", "red")
    blue_b, red_b = lab.run_pod("blue-b", "node3", "blue"), lab.run_pod("red-b", "node2", "red")
    assert address(blue_a, "blue") == address(red_a, "red")
    assert address(blue_b, "blue") == address(red_b, "red")
    for pod in ("blue-a", "red-a", "blue-b", "red-b"):
        whoami.start(lab.pod_netns(pod), pod)
    answers(lab, "blue-b", address(blue_a, "blue"), "blue-a")  # node3 -> node1 over blue's VNI
    answers(lab, "red-b", address(red_a, "red"), "red-a")  # node2 -> node1 over red's VNI: the red owner
    answers(lab, "blue-a", address(blue_b, "blue"), "blue-b")
    answers(lab, "red-a", address(red_b, "red"), "red-b")
    # a red pod on the node of a blue-only peer: the address exists on blue there, red must not reach it
    red_c = lab.run_pod("red-c", "node3", "red")
    whoami.start(lab.pod_netns("red-c"), "red-c")
    answers(lab, "red-a", address(red_c, "red"), "red-c")
    assert ask(lab.pod_netns("red-a"), address(blue_b, "blue"), timeout=0.5) != "blue-b"


def test_killed_agent_keeps_pods_forwarding_and_restart_converges(lab: Lab, whoami: Servers) -> None:
    lab.up(nodes=2)
    a, b = lab.run_pod("a", "node1", "blue"), lab.run_pod("b", "node2", "blue")
    gone = lab.run_pod("gone", "node1", "blue")
    whoami.start(lab.pod_netns("a"), "a")
    answers(lab, "b", address(a, "blue"), "a")
    node1 = lab.node_netns("node1")
    before_rules = sh(f"ip -n {node1} rule").stdout.count("proto 109")
    lab.ctl("stop", "node1", "--role", "agent", "--signal", "KILL")
    assert ask(lab.pod_netns("b"), address(a, "blue")) == "a"  # the kernel keeps forwarding without its agent
    lab.ctl("rm-pod", "gone")  # CNI DEL while the agent is down: succeeds, the agent cleans up when back
    assert not [
        r
        for r in json.loads(lab.multinetctl("get", "reservations", "-o", "json"))
        if r["address"] == address(gone, "blue")
    ]
    lab.ctl("start", "node1", "--role", "agent")

    def converged() -> bool:
        rules = sh(f"ip -n {node1} rule").stdout
        # `ip rule` lists IPv4 rules: the removed port had one
        return rules.count("proto 109") == before_rules - 1 and "mnx" not in sh(f"ip -n {node1} -br link").stdout

    wait_for(converged, 15, "node1's agent to remove the pod deleted while it was down")
    links = [line for line in sh(f"ip -n {node1} -br link").stdout.splitlines() if line.startswith("mn")]
    assert len([line for line in links if not line.startswith("mnvx")]) == 1  # only a's port is left
    assert ask(lab.pod_netns("b"), address(a, "blue")) == "a"
    assert b


def test_removed_node_disappears_from_the_others(lab: Lab, whoami: Servers) -> None:
    lab.up(nodes=3)
    lab.run_pod("a", "node1", "blue")
    c = lab.run_pod("c", "node3", "blue")
    node1 = lab.node_netns("node1")
    node3_underlay = next(n["underlay"] for n in lab.state()["nodes"] if n["name"] == "node3")
    wait_for(lambda: node3_underlay in sh(f"bridge -n {node1} fdb show dev mnvx1234").stdout, 10, "fdb to node3")
    lab.ctl("rm-node", "node3")

    def dropped() -> bool:
        fdb = sh(f"bridge -n {node1} fdb show dev mnvx1234").stdout
        routes = sh(f"ip -n {node1} route show table all").stdout
        return node3_underlay not in fdb and f"{address(c, 'blue')} via" not in routes

    wait_for(dropped, 10, "node1 to drop node3's tunnel entries and routes")
    assert "node3" not in lab.multinetctl("get", "nodes")


def test_network_added_and_removed_while_pods_run(lab: Lab) -> None:
    lab.up(nodes=2)
    lab.run_pod("a", "node1", "blue")
    green = (
        "apiVersion: projectcalico.org/v3\nkind: Network\nmetadata: {name: green}\n"
        "spec: {vni: 4000, range: 10.40.0.0/16}\n---\napiVersion: k8s.cni.cncf.io/v1\n"
        "kind: NetworkAttachmentDefinition\nmetadata: {name: green-att}\n"
        'spec: {config: \'{"type": "multinet", "network": "green"}\'}\n'
    )
    lab.multinetctl("apply", "-f", "-", stdin=green)
    nodes = [lab.node_netns("node1"), lab.node_netns("node2")]
    wait_for(lambda: all("mnvx4000" in sh(f"ip -n {n} -br link").stdout for n in nodes), 10, "green everywhere")
    lab.run_pod("g", "node2", "green")
    lab.multinetctl("delete", "network", "green")

    def green_gone(ns: str) -> bool:
        links, rules = sh(f"ip -n {ns} -br link").stdout, sh(f"ip -n {ns} rule").stdout
        return "mnvx4000" not in links and "268439456" not in rules  # green's table: base + 4000

    wait_for(lambda: all(green_gone(n) for n in nodes), 10, "green's tunnel and rules gone everywhere")
    assert "268439456" not in sh(f"ip -n {nodes[1]} route show table all").stdout
    assert "mnvx1234" in sh(f"ip -n {nodes[0]} -br link").stdout  # blue untouched


def test_down_after_a_crash_removes_everything(lab: Lab) -> None:
    lab.up(nodes=2)
    lab.run_pod("a", "node1", "blue")
    pids = [p["pid"] for p in lab.state()["processes"]]
    (lab.state_dir / "lab.json").unlink()  # the lab's memory is lost, as after a crash of the host's tooling
    out = lab.ctl("down", "--name", lab.name).stdout
    assert "removed netns" in out
    assert not [line for line in sh("ip netns list").stdout.splitlines() if line.startswith(f"{lab.name}-")]
    for pid in pids:
        assert not running(pid), f"process {pid} of the lab is still running"
