"""Issue 2 end to end: `multinetctl up` in a node netns, the seed's objects applied, the real `multinet`
executable called as a runtime calls it. Isolation is shown with TCP between pods; every failed ADD is
checked to leave nothing behind (no reservation, no interface, no route, no rule)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.fixtures.netns import Namespaces, sh
from tests.fixtures.stack import SEED, Stack, node_leftovers
from tests.fixtures.traffic import Servers, ask

pytestmark = pytest.mark.integration


def add(
    stack: Stack, netns: Namespaces, attachment: str, pod: str, ifname: str = "eth1", **conf_extra: object
) -> tuple[int, Any]:
    conf = stack.plugin_config(attachment) | conf_extra
    return stack.cni("ADD", conf, container_id=f"ctr-{pod}", netns=netns.path(pod), ifname=ifname)


def test_seed_objects_apply_list_and_install(stack: Stack) -> None:
    stack.start()
    stack.apply_seed()
    nets = json.loads(stack.ctl("get", "networks", "-o", "json").stdout)
    assert {(n["name"], n["vni"], n["range"]) for n in nets} == {
        ("blue", 1234, "192.168.0.0/16"),
        ("red", 1235, "192.168.0.0/16"),
    }
    atts = json.loads(stack.ctl("get", "attachments", "-o", "json").stdout)
    assert {(a["name"], a["network"]) for a in atts} == {("network-blue-conf", "blue"), ("network-red-conf", "red")}
    conflist = stack.conflist("network-blue-conf")
    assert conflist["name"] == "network-blue-conf"
    assert conflist["plugins"][0]["type"] == "multinet"
    assert "multinet_socket" not in json.dumps(conflist)  # the socket is never taken from the configuration
    assert (stack.bin_dir / "multinet.socket").read_text().strip() == str(stack.state_dir / "run" / "cni.sock")
    assert stack.plugin.stat().st_mode & 0o111
    assert "network/blue unchanged" in stack.ctl("apply", "-f", str(SEED)).stdout


BAD_OBJECTS = [
    (
        "kind: Network\napiVersion: projectcalico.org/v3\nmetadata: {name: Blue}\nspec: {vni: 1, range: 10.0.0.0/8}",
        "metadata.name",
    ),
    (
        "kind: Network\napiVersion: projectcalico.org/v3\nmetadata: {name: b}\nspec: {vni: 0, range: 10.0.0.0/8}",
        "spec.vni",
    ),
    (
        "kind: Network\napiVersion: projectcalico.org/v3\nmetadata: {name: b}\n"
        "spec: {vni: 16777216, range: 10.0.0.0/8}",
        "spec.vni",
    ),
    (
        "kind: Network\napiVersion: projectcalico.org/v3\nmetadata: {name: b}\nspec: {vni: 5, range: 10.0.0.1/8}",
        "spec.range",
    ),
    (
        "kind: Network\napiVersion: projectcalico.org/v3\nmetadata: {name: b}\nspec: {vni: 5, range: banana}",
        "spec.range",
    ),
    (
        "kind: Network\napiVersion: projectcalico.org/v3\nmetadata: {name: b}\nspec: {vni: 1234, range: 10.0.0.0/8}",
        "already used by network 'blue'",
    ),
    (
        "kind: NetworkAttachmentDefinition\napiVersion: k8s.cni.cncf.io/v1\nmetadata: {name: x}\nspec:\n  config: "
        '\'{"type": "multinet", "dataplane_options": {"network_name": "green"}}\'',
        "unknown network 'green'",
    ),
]


def test_bad_objects_are_refused_naming_the_field(stack: Stack) -> None:
    stack.start()
    stack.apply_seed()
    for text, expected in BAD_OBJECTS:
        result = stack.ctl("apply", "-f", "-", stdin=text, check=False)
        assert result.returncode != 0, text
        assert expected in result.stderr, (text, result.stderr)
    nets = json.loads(stack.ctl("get", "networks", "-o", "json").stdout)
    assert sorted(n["name"] for n in nets) == ["blue", "red"]


def test_add_check_del_through_the_plugin(stack: Stack, netns: Namespaces) -> None:
    stack.start()
    stack.apply_seed()
    pod = netns.new("pod")
    status, result = add(stack, netns, "network-blue-conf", pod)
    assert status == 0, result
    assert isinstance(result, dict)
    assert result["cniVersion"] == "1.0.0"
    address = result["ips"][0]["address"]
    assert address.endswith("/32") and address.startswith("192.168.")
    inside = sh(f"ip -n {pod} -j addr show eth1").stdout
    assert address.split("/")[0] in inside
    routes = sh(f"ip -n {pod} route").stdout
    assert "192.168.0.0/16 via 169.254.1.1 dev eth1" in routes
    assert "default" not in routes
    mtu = json.loads(inside)[0]["mtu"]
    assert mtu == json.loads(sh(f"ip -n {stack.node_ns} -j link").stdout)[0]["mtu"] or mtu > 0
    conf = stack.plugin_config("network-blue-conf") | {"prevResult": result}
    assert stack.cni("CHECK", conf, container_id=f"ctr-{pod}", netns=netns.path(pod))[0] == 0
    assert [r["address"] for r in stack.reservations()] == [address.split("/")[0]]
    for _ in range(2):  # DEL is idempotent
        assert (
            stack.cni(
                "DEL", stack.plugin_config("network-blue-conf"), container_id=f"ctr-{pod}", netns=netns.path(pod)
            )[0]
            == 0
        )
    assert stack.reservations() == []
    assert sh(f"ip -n {pod} link show eth1", check=False).returncode != 0
    assert node_leftovers(stack) == []


def test_del_succeeds_when_the_netns_is_gone(stack: Stack, netns: Namespaces) -> None:
    stack.start()
    stack.apply_seed()
    pod = netns.new("pod")
    assert add(stack, netns, "network-red-conf", pod)[0] == 0
    path = netns.path(pod)
    netns.delete(pod)
    assert stack.cni("DEL", stack.plugin_config("network-red-conf"), container_id=f"ctr-{pod}", netns=path)[0] == 0
    assert stack.reservations() == []
    assert node_leftovers(stack) == []


def test_overlapping_addresses_are_isolated_per_network(stack: Stack, netns: Namespaces, whoami: Servers) -> None:
    stack.start()
    stack.apply_seed()
    pods = {name: netns.new(name) for name in ("blue1", "blue2", "red1", "red2")}
    addresses = {}
    for name, ns in pods.items():
        status, result = add(stack, netns, f"network-{name[:-1]}-conf", ns)
        assert status == 0, result
        addresses[name] = result["ips"][0]["address"].split("/")[0]
        whoami.start(ns, name)
    # the two networks allocate independently: the same addresses exist on both
    assert addresses["blue1"] == addresses["red1"]
    assert addresses["blue2"] == addresses["red2"]
    assert ask(pods["blue2"], addresses["blue1"]) == "blue1"
    assert ask(pods["blue1"], addresses["blue2"]) == "blue2"
    assert ask(pods["red2"], addresses["red1"]) == "red1"  # red asks for an address blue also has: red answers
    assert ask(pods["red1"], addresses["red2"]) == "red2"


def test_default_route_only_when_asked(stack: Stack, netns: Namespaces) -> None:
    stack.start()
    stack.apply_seed()
    pod = netns.new("pod")
    assert add(stack, netns, "network-blue-conf", pod, default_route=True)[0] == 0
    assert "default via 169.254.1.1 dev eth1" in sh(f"ip -n {pod} route").stdout


def test_failed_adds_report_the_spec_code_and_leave_nothing(stack: Stack, netns: Namespaces) -> None:
    stack.start()
    stack.apply_seed()
    stack.ctl(
        "apply",
        "-f",
        "-",
        stdin=(
            "apiVersion: projectcalico.org/v3\nkind: Network\nmetadata: {name: tiny}\n"
            "spec: {vni: 77, range: 10.9.0.0/30}"
        ),
    )
    pod = netns.new("pod")
    path = netns.path(pod)
    blue = stack.plugin_config("network-blue-conf")
    sock = str(stack.state_dir / "run" / "cni.sock")
    cases: list[tuple[str, int, object, dict[str, object]]] = [
        # a config that cannot be read cannot name its socket: the default one is used (here: this instance's)
        ("malformed JSON", 6, b'{"cniVersion": "1.0.0", "name": ', {"extra_env": {"MULTINET_CNI_SOCKET": sock}}),
        ("missing CNI_NETNS", 4, blue, {"drop": ("CNI_NETNS",)}),
        ("missing CNI_CONTAINERID", 4, blue, {"drop": ("CNI_CONTAINERID",)}),
        ("invalid ifname", 4, blue, {"ifname": "this-name-is-too-long"}),
        ("unknown network", 7, blue | {"network": "green"}, {}),
        ("unsupported version", 1, blue | {"cniVersion": "7.0.0"}, {}),
        ("netns missing", 3, blue, {"netns": "/var/run/netns/no-such-pod"}),
    ]
    for label, code, conf, opts in cases:
        kwargs: dict[str, object] = {"container_id": "bad", "netns": path} | opts
        status, out = stack.cni("ADD", conf, **kwargs)  # type: ignore[arg-type]
        assert status != 0, label
        assert isinstance(out, dict) and out["code"] == code, (label, out)
        assert out["msg"], label
        assert stack.reservations() == [], label
        assert node_leftovers(stack) == [], label
        assert sh(f"ip -n {pod} link show eth1", check=False).returncode != 0, label
    # interface name already taken inside the pod: refused, and the existing interface is untouched
    sh(f"ip -n {pod} link add eth1 type veth peer name peer0")
    status, out = stack.cni("ADD", blue, container_id="taken", netns=path)
    assert status != 0 and out["code"] == 101, out
    assert stack.reservations() == [] and node_leftovers(stack) == []
    assert sh(f"ip -n {pod} link show eth1").returncode == 0
    # range exhausted: a /30 has two usable addresses
    tiny = blue | {"network": "tiny"}
    for i in range(2):
        extra = netns.new(f"t{i}")
        assert stack.cni("ADD", tiny, container_id=f"t{i}", netns=netns.path(extra))[0] == 0
    last = netns.new("t2")
    status, out = stack.cni("ADD", tiny, container_id="t2", netns=netns.path(last))
    assert status != 0 and out["code"] == 102, out
    assert len(stack.reservations()) == 2
    assert sh(f"ip -n {last} link show eth1", check=False).returncode != 0


def test_netmgr_not_running_is_try_again_later(stack: Stack, netns: Namespaces) -> None:
    stack.start()
    stack.apply_seed()
    assert stack.stop() == 0  # SIGTERM stops it cleanly
    assert not (stack.state_dir / "run" / "cni.sock").exists()
    pod = netns.new("pod")
    status, out = add(stack, netns, "network-blue-conf", pod)
    assert status != 0 and out["code"] == 11, out
    assert "multinetctl up" in out["msg"]
    version = stack.cni("VERSION", {"cniVersion": "0.4.0"})
    assert version == (0, {"cniVersion": "0.4.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})


def test_podman_attaches_a_container_to_blue_and_red(stack: Stack, podman_factory: list[object]) -> None:
    from tests.fixtures.podman import new_podman

    stack.start()
    stack.apply_seed()
    podman = new_podman(podman_factory, stack.bin_dir, stack.conf_dir)  # type: ignore[arg-type]
    run = podman.run(
        "run",
        "--rm",
        "--network",
        "network-blue-conf,network-red-conf",
        "--rootfs",
        str(podman.rootfs),
        "/bin/ip",
        "-o",
        "-4",
        "addr",
        "show",
    )
    lines = run.stdout.splitlines()
    eth0 = [line for line in lines if " eth0 " in line]
    eth1 = [line for line in lines if " eth1 " in line]
    assert eth0 and eth1, run.stdout
    assert "192.168." in eth0[0] and "/32" in eth0[0]
    assert "192.168." in eth1[0] and "/32" in eth1[0]
    # --rm: podman called DEL on both networks, and IPAM holds nothing any more
    assert stack.reservations() == []
    assert node_leftovers(stack) == []


def test_commands_of_a_missing_instance_explain_what_to_do(tmp_path: object) -> None:
    result = subprocess.run(
        ["python3", "-m", "multinetctl", "get", "networks", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "multinetctl up" in result.stderr
