"""CNI 1.0/1.1 conformance of the real `multinet` executable, exec'd as runtimes exec it, against real services
(the embedded stack, or netmgr, IPAM and the agent as separate processes) in a node network namespace:

- every command (ADD, DEL, CHECK, STATUS, GC, VERSION) and every version's result (0.3.0 ... 1.1.0, cniVersions);
- every error path with the spec's code and a message that says what to fix, and nothing left behind;
- STATUS 50/51, code 11 while the front door is not in sync, GC of stale attachments on every network;
- chaining with Debian's tuning, bandwidth and portmap (libcni-style exec, and podman);
- Multus delegate behaviour driven by a `k8s.v1.cni.cncf.io/networks` annotation, and the network-status."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from multinet.v1 import cni_pb2, cni_pb2_grpc

from multinetctl.install_cni import install_plugin
from services.netmgr.npwg import parse_networks, status_problems
from tests.fixtures.fastpath import qdisc_packets, tcx_programs
from tests.fixtures.netns import Namespaces, sh
from tests.fixtures.poll import wait_for
from tests.fixtures.stack import SEED, Stack, node_leftovers, node_objects
from tests.integration.cni_spec import SCHEMA, schema_problems
from tests.integration.cnitool import Chain, Held, node_ports, pod_addresses, pod_links, pod_routes

pytestmark = pytest.mark.integration
TINY = "apiVersion: projectcalico.org/v3\nkind: Network\nmetadata: {name: tiny}\nspec: {vni: 77, range: 10.9.0.0/30}"


@pytest.fixture
def held(stack: Stack) -> Iterator[Callable[[], Held]]:
    made: list[Held] = []

    def make() -> Held:
        made.append(Held(stack))
        return made[-1]

    try:
        yield make
    finally:
        for h in made:
            h.close()


def ok(outcome: tuple[int, Any]) -> Any:
    status, out = outcome
    assert status == 0, out
    return out


# ------------------------------------------------------------------------------------------------------ VERSION
def test_version_answers_without_any_service() -> None:
    with tempfile.TemporaryDirectory(prefix="multinet-test-") as tmp:
        plugin = Path(tmp) / "multinet"
        install_plugin(plugin, Path(tmp) / "nothing-listens-here.sock")

        def version(stdin: bytes) -> dict[str, Any]:
            run = subprocess.run(
                [str(plugin)], input=stdin, env={"CNI_COMMAND": "VERSION"}, capture_output=True, timeout=10
            )
            assert run.returncode == 0, run.stdout
            answer: dict[str, Any] = json.loads(run.stdout)
            return answer

        supported = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
        assert version(b"") == {"cniVersion": "1.1.0", "supportedVersions": supported}
        for v in supported:
            assert version(json.dumps({"cniVersion": v}).encode())["cniVersion"] == v
        assert version(b'{"cniVersion": "9.9.9"}')["cniVersion"] == "1.1.0"  # answer in a version we speak
        assert version(b'{"cniVersions": ["1.0.0", "1.1.0"]}')["supportedVersions"] == supported


# ------------------------------------------------------------------------------------------------------ results
def test_add_check_del_in_every_version(stack: Stack, netns: Namespaces, held: Callable[[], Held]) -> None:
    stack.start()
    stack.apply_seed()
    state = held()
    conflist = stack.conflist("network-blue-conf")
    assert conflist["cniVersions"] == ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]  # CNI 1.1 list field
    pod = netns.new("pod")
    path = netns.path(pod)
    for i, version in enumerate(SCHEMA):
        conf = stack.plugin_config("network-blue-conf", version)
        result = ok(stack.cni("ADD", conf, container_id=f"c{i}", netns=path, ifname=f"eth{i + 1}"))
        assert schema_problems(version, result) == [], (version, result)
        pod_side = result["interfaces"][result["ips"][0]["interface"]]
        assert (pod_side["name"], pod_side["sandbox"]) == (f"eth{i + 1}", path)
        assert pod_addresses(pod, f"eth{i + 1}") == [result["ips"][0]["address"]]
        if version >= "0.4.0":
            ok(
                stack.cni(
                    "CHECK", conf | {"prevResult": result}, container_id=f"c{i}", netns=path, ifname=f"eth{i + 1}"
                )
            )
    # a config with only the 1.1 list: the highest version both sides know
    listed = {k: v for k, v in stack.plugin_config("network-blue-conf").items() if k != "cniVersion"}
    listed["cniVersions"] = ["0.4.0", "1.1.0", "2.0.0"]
    result = ok(stack.cni("ADD", listed, container_id="listed", netns=path, ifname="eth9"))
    assert result["cniVersion"] == "1.1.0" and schema_problems("1.1.0", result) == []
    assert len(state.reservations("blue")) == len(SCHEMA) + 1
    for i, version in enumerate(SCHEMA):
        conf = stack.plugin_config("network-blue-conf", version)
        for _ in range(2):  # DEL is idempotent
            ok(stack.cni("DEL", conf, container_id=f"c{i}", netns=path, ifname=f"eth{i + 1}"))
    ok(stack.cni("DEL", listed, container_id="listed", netns=path, ifname="eth9"))
    assert state.nothing() and node_leftovers(stack) == [] and pod_links(pod) == set()


# ------------------------------------------------------------------------------------------------------ errors
def _bad(conf: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = dict(conf) | changes
    return {k: v for k, v in out.items() if v is not None}


def error_cases(blue: dict[str, Any], sock: str) -> list[tuple[str, str, int, str, Any, dict[str, Any]]]:
    """(label, command, code, what the message must name, config, options for Stack.cni)"""
    v11 = blue | {"cniVersion": "1.1.0"}
    check = blue | {"prevResult": {"cniVersion": "1.0.0", "interfaces": [], "ips": []}}
    raw = {"extra_env": {"MULTINET_CNI_SOCKET": sock}}
    return [
        # 1: incompatible version
        ("unsupported cniVersion", "ADD", 1, "7.0.0", blue | {"cniVersion": "7.0.0"}, {}),
        ("no common cniVersions", "ADD", 1, "cniVersions", _bad(blue, cniVersion=None, cniVersions=["9.0.0"]), {}),
        ("CHECK before 0.4.0", "CHECK", 1, "0.4.0", check | {"cniVersion": "0.3.1"}, {}),
        ("GC before 1.1.0", "GC", 1, "1.1.0", blue, {}),
        ("STATUS before 1.1.0", "STATUS", 1, "1.1.0", blue, {}),
        ("DEL in an unknown version", "DEL", 1, "7.0.0", blue | {"cniVersion": "7.0.0"}, {}),
        # 2: unsupported field (key and value named)
        ("ipMasq", "ADD", 2, "ipMasq: true", blue | {"ipMasq": True}, {}),
        ("foreign IPAM", "ADD", 2, "'host-local'", blue | {"ipam": {"type": "host-local"}}, {}),
        ("deviceID", "ADD", 2, "runtimeConfig.deviceID", blue | {"runtimeConfig": {"deviceID": "0000:03:00.1"}}, {}),
        ("dataplane option", "ADD", 2, "dataplane_options.vrf: 3", blue | {"dataplane_options": {"vrf": 3}}, {}),
        ("InfiniBand MAC", "ADD", 2, "mac", blue | {"runtimeConfig": {"mac": ":".join(["a0"] * 20)}}, {}),
        # 3: container unknown
        ("netns missing", "ADD", 3, "/var/run/netns/no-such-pod", blue, {"netns": "/var/run/netns/no-such-pod"}),
        # 4: invalid environment (the variable named)
        ("bogus CNI_COMMAND", "FOO", 4, "CNI_COMMAND", blue, {}),
        ("no CNI_COMMAND", "", 4, "CNI_COMMAND", blue, {}),
        ("no CNI_CONTAINERID", "ADD", 4, "CNI_CONTAINERID", blue, {"drop": ("CNI_CONTAINERID",)}),
        ("no CNI_NETNS", "ADD", 4, "CNI_NETNS", blue, {"drop": ("CNI_NETNS",)}),
        ("no CNI_IFNAME", "ADD", 4, "CNI_IFNAME", blue, {"drop": ("CNI_IFNAME",)}),
        ("no CNI_PATH", "ADD", 4, "CNI_PATH", blue, {"drop": ("CNI_PATH",)}),
        ("DEL without CNI_IFNAME", "DEL", 4, "CNI_IFNAME", blue, {"drop": ("CNI_IFNAME",)}),
        ("ifname too long", "ADD", 4, "CNI_IFNAME", blue, {"ifname": "this-is-too-long"}),
        ("ifname with /", "ADD", 4, "CNI_IFNAME", blue, {"ifname": "eth/1"}),
        ("bad container id", "ADD", 4, "CNI_CONTAINERID", blue, {"container_id": "-x"}),
        ("CNI_ARGS not K=V", "ADD", 4, "CNI_ARGS", blue, {"extra_env": {"CNI_ARGS": "K8S_POD_NAME"}}),
        ("CNI_ARGS bad IP", "ADD", 4, "CNI_ARGS IP", blue, {"extra_env": {"CNI_ARGS": "IgnoreUnknown=1;IP=nope"}}),
        ("CNI_ARGS bad MAC", "ADD", 4, "CNI_ARGS MAC", blue, {"extra_env": {"CNI_ARGS": "MAC=01:02"}}),
        # 6: decode failure
        ("malformed JSON", "ADD", 6, "not valid JSON", b'{"cniVersion": "1.0.0", "name": ', raw),
        ("JSON not an object", "ADD", 6, "JSON object", b"[1, 2]", raw),
        # 7: invalid configuration
        ("no cniVersion", "ADD", 7, "cniVersion", _bad(blue, cniVersion=None), {}),
        ("cniVersions not a list", "ADD", 7, "cniVersions", _bad(blue, cniVersion=None, cniVersions="1.0.0"), {}),
        ("bad name", "ADD", 7, "name", blue | {"name": "-x"}, {}),
        ("unknown network", "ADD", 7, "green", blue | {"network": "green"}, {}),
        ("unknown attachment", "ADD", 7, "no-such-nad", _bad(blue, network=None, name="no-such-nad"), {}),
        ("bad runtimeConfig.ips", "ADD", 7, "runtimeConfig.ips", blue | {"runtimeConfig": {"ips": ["x"]}}, {}),
        ("bad args.cni.mac", "ADD", 7, "args.cni.mac", blue | {"args": {"cni": {"mac": "zz"}}}, {}),
        ("bad default-route", "ADD", 7, "default-route", blue | {"default-route": ["10.0.0.1", "10.0.0.2"]}, {}),
        (
            "whereabouts typo",
            "ADD",
            7,
            "ipam.range_stat",
            blue | {"ipam": {"type": "whereabouts", "range_stat": 1}},
            {},
        ),
        ("CHECK without prevResult", "CHECK", 7, "prevResult", blue, {}),
        ("GC list malformed", "GC", 7, "valid-attachments", v11 | {"cni.dev/valid-attachments": {}}, {}),
        ("GC unknown network", "GC", 7, "no known network", _bad(v11, network=None, name="nope"), {}),
        ("prevResult not an object", "DEL", 7, "prevResult", blue | {"prevResult": []}, {}),
    ]


def test_every_error_path_has_its_code_a_message_and_leaves_nothing(
    stack: Stack, netns: Namespaces, held: Callable[[], Held]
) -> None:
    stack.start()
    stack.apply_seed()
    stack.ctl("apply", "-f", "-", stdin=TINY)
    state = held()
    pod = netns.new("pod")
    path = netns.path(pod)
    blue = stack.plugin_config("network-blue-conf")
    sock = str(stack.state_dir / "run" / "cni.sock")
    for label, command, code, named, conf, opts in error_cases(blue, sock):
        kwargs: dict[str, Any] = {"container_id": "bad", "netns": path} | opts
        status, out = stack.cni(command, conf, **kwargs)
        assert status != 0, label
        assert isinstance(out, dict) and out.get("code") == code, (label, out)
        assert named in out["msg"] + out.get("details", ""), (label, out)
        assert out["cniVersion"] in SCHEMA, (label, out)
    assert state.nothing() and node_leftovers(stack) == [] and pod_links(pod) == set()

    # failures that happen after an address was reserved: each rolls everything back
    held_pod = netns.new("holder")
    kept = ok(stack.cni("ADD", blue, container_id="holder", netns=netns.path(held_pod)))["ips"][0]["address"]
    kept_ip = kept.split("/")[0]
    sh(f"ip -n {pod} link add eth1 type veth peer name peer0")
    rolled_back = [
        ("ifname exists in the netns", 101, "eth1", blue, {}),
        ("requested address taken", 103, kept_ip, blue | {"runtimeConfig": {"ips": [kept_ip]}}, {"ifname": "eth2"}),
        ("requested address out of range", 7, "10.99.0.1", blue | {"args": {"cni": {"ips": ["10.99.0.1"]}}}, {}),
        ("pool exhausted", 102, "tiny", blue | {"network": "tiny"}, {"ifname": "eth3"}),
    ]
    tiny = blue | {"network": "tiny"}
    for i in range(2):  # a /30 has two usable addresses
        ok(stack.cni("ADD", tiny, container_id=f"t{i}", netns=netns.path(netns.new(f"t{i}"))))
    before_res, before_ifaces, before_kernel = state.reservations(), set(state.interfaces()), node_objects(stack)
    for label, code, named, conf, opts in rolled_back:
        options: dict[str, Any] = {"container_id": f"bad{code}", "netns": path} | opts
        status, out = stack.cni("ADD", conf, **options)
        assert status != 0 and out["code"] == code, (label, out)
        assert named in out["msg"] + out.get("details", ""), (label, out)
        assert state.reservations() == before_res, label
        assert set(state.interfaces()) == before_ifaces, label
        assert node_leftovers(stack, expect=before_kernel) == before_kernel, label  # ports, rules, routes
        assert pod_links(pod) == {"eth1", "peer0"}, label  # only the veth pair made above, untouched
    # CHECK catches what went missing: an address, then the interface
    holder = netns.path(held_pod)
    result = ok(stack.cni("ADD", blue, container_id="checked", netns=holder, ifname="eth5"))
    conf = blue | {"prevResult": result}
    ok(stack.cni("CHECK", conf, container_id="checked", netns=holder, ifname="eth5"))
    sh(f"ip -n {held_pod} addr flush dev eth5")
    status, out = stack.cni("CHECK", conf, container_id="checked", netns=holder, ifname="eth5")
    assert status != 0 and out["code"] == 104 and "missing" in out["msg"], out
    sh(f"ip -n {held_pod} link del eth5")
    status, out = stack.cni("CHECK", conf, container_id="checked", netns=holder, ifname="eth5")
    assert status != 0 and out["code"] == 104 and "does not exist" in out["msg"], out
    status, out = stack.cni("CHECK", conf, container_id="never-added", netns=holder, ifname="eth6")
    assert status != 0 and out["code"] == 104 and "no blue attachment" in out["msg"], out
    ok(stack.cni("DEL", blue, container_id="checked", netns=holder, ifname="eth5"))


# ------------------------------------------------------------------------------------------------------ code 11
def test_try_again_later_until_the_front_door_is_in_sync(stack: Stack, netns: Namespaces) -> None:
    """The CNI front door as its own process, its catalog not there yet. The plugin's socket opens only once the
    front door holds the catalog, so the executable answers 11 (STATUS: 50) saying so; the same logic over gRPC
    (Cni.Invoke, served at once) answers 11 "not yet in sync" naming the catalog's error. Once a catalog process
    starts, the same ADD succeeds."""
    run = stack.state_dir / "run"
    install_plugin(stack.plugin, run / "cni.sock")  # install-cni needs the catalog, which is not there yet
    stack.start_service("ipam")
    stack.start_service("agent")
    front = stack.start_service("netmgr", "--roles", "cni", "--listen", f"unix:{run / 'front.sock'}", ready=False)
    stack.wait_for_socket(run / "front.sock", front)
    conf = {
        "cniVersion": "1.1.0",
        "name": "network-blue-conf",
        "type": "multinet",
        "network": "blue",
    }
    pod = netns.new("pod")
    env = {"CNI_CONTAINERID": "c1", "CNI_NETNS": netns.path(pod), "CNI_IFNAME": "eth1", "CNI_PATH": "/opt/cni/bin"}
    with grpc.insecure_channel(f"unix:{run / 'front.sock'}") as channel:
        cni = cni_pb2_grpc.CniStub(channel)
        for command in ("ADD", "DEL", "CHECK", "GC", "STATUS"):
            extra = {"prevResult": {"cniVersion": "1.1.0"}} if command == "CHECK" else {}
            status, out = stack.cni(command, conf | extra, container_id="c1", netns=netns.path(pod))
            expected = 50 if command == "STATUS" else 11
            assert status != 0 and out["code"] == expected and "not yet in sync" in out["msg"], (command, out)
            reply = cni.Invoke(
                cni_pb2.CniInvocation(env=env | {"CNI_COMMAND": command}, stdin=json.dumps(conf | extra).encode()),
                timeout=10,
            )
            assert reply.exit_code != 0 and reply.error.code == expected, (command, reply)
            assert "not yet in sync" in reply.error.msg and "catalog" in reply.error.details, reply
            assert "netmgr.sock" in reply.error.details, reply  # the catalog it cannot reach
    stack.start_service("netmgr", "--roles", "catalog", name="catalog", socket="netmgr.sock")
    stack.ctl("apply", "-f", str(SEED))
    result = wait_for(lambda: _try_add(stack, conf, netns.path(pod)), 15.0, "ADD once in sync")
    assert result["ips"][0]["address"].startswith("192.168.")
    # the agent reports 51 until its first snapshot is applied (it started before any catalog existed)
    wait_for(lambda: stack.cni("STATUS", conf)[0] == 0, 15.0, "STATUS 0 once the agent converged")
    ok(stack.cni("DEL", conf, container_id="c1", netns=netns.path(pod)))

    # the catalog goes away after the front door was in sync: STATUS 50, ADD 11 before anything is reserved
    stack.stop_service("catalog")
    wait_for(lambda: (stack.cni("STATUS", conf)[1] or {}).get("code") == 50, 15.0, "STATUS 50 with the catalog gone")
    status, out = stack.cni("STATUS", conf)
    assert status != 0 and out["code"] == 50 and "cannot reach its catalog" in out["msg"], out
    other = netns.new("other")
    status, out = stack.cni("ADD", conf, container_id="c2", netns=netns.path(other))
    assert status != 0 and out["code"] == 11 and "catalog" in out["msg"], out
    assert pod_links(other) == set() and node_leftovers(stack) == []
    stack.start_service("netmgr", "--roles", "catalog", name="catalog", socket="netmgr.sock")
    wait_for(lambda: stack.cni("STATUS", conf)[0] == 0, 15.0, "STATUS 0 once the catalog is back")
    ok(stack.cni("ADD", conf, container_id="c2", netns=netns.path(other)))
    ok(stack.cni("DEL", conf, container_id="c2", netns=netns.path(other)))


def _try_add(stack: Stack, conf: dict[str, Any], path: str) -> dict[str, Any] | None:
    status, out = stack.cni("ADD", conf, container_id="c1", netns=path)
    if status == 0:
        return dict(out)
    assert out["code"] == 11, out  # nothing but "try again later" until then
    return None


# ------------------------------------------------------------------------------------------------------ STATUS
def test_status_50_51_and_add_while_a_service_is_down(
    stack: Stack, netns: Namespaces, held: Callable[[], Held]
) -> None:
    """netmgr, IPAM and the agent as separate processes. STATUS: 0 when an ADD could succeed; 50 when the pool is
    exhausted or IPAM is unreachable; 51 when the node agent is down (existing pods keep what the kernel holds, but
    nothing is repaired or updated). ADD meanwhile answers 11 and leaves nothing; DEL still succeeds."""
    for service in ("netmgr", "ipam", "agent"):
        stack.start_service(service)
    stack.apply_seed()
    stack.ctl("apply", "-f", "-", stdin=TINY)
    state = held()
    v11 = stack.plugin_config("network-blue-conf", "1.1.0")
    tiny = v11 | {"network": "tiny"}
    ok(stack.cni("STATUS", v11))
    ok(stack.cni("STATUS", tiny))
    pods = [netns.new(f"t{i}") for i in range(2)]
    for i, pod in enumerate(pods):
        ok(stack.cni("ADD", tiny, container_id=f"t{i}", netns=netns.path(pod)))
    status, out = stack.cni("STATUS", tiny)
    assert status != 0 and out["code"] == 50 and "exhausted" in out["msg"] and "2 of 2" in out["details"], out
    ok(stack.cni("STATUS", v11))  # another network's pool is fine
    ok(stack.cni("DEL", tiny, container_id="t1", netns=netns.path(pods[1])))
    ok(stack.cni("STATUS", tiny))

    # the node agent goes away: 51; ADD is "try again later" and leaves nothing; DEL still works
    stack.stop_service("agent")
    status, out = stack.cni("STATUS", v11)
    assert status != 0 and out["code"] == 51 and "node agent" in out["msg"], out
    before = state.reservations()
    late = netns.new("late")
    status, out = stack.cni("ADD", v11, container_id="late", netns=netns.path(late))
    assert status != 0 and out["code"] == 11 and "agent" in out["msg"], out
    assert state.reservations() == before and ("blue", "late", "eth1") not in state.interfaces()
    ok(stack.cni("DEL", tiny, container_id="t0", netns=netns.path(pods[0])))
    assert state.reservations("tiny") == set() and not state.interfaces("tiny")
    # back: it converges, removing the port of the pod deleted meanwhile
    stack.start_service("agent")
    wait_for(lambda: stack.cni("STATUS", v11)[0] == 0, 15.0, "agent back in sync")
    wait_for(lambda: "eth1" not in pod_links(pods[0]), 15.0, "stale port removed")
    assert node_leftovers(stack) == []

    # IPAM goes away: 50 (existing pods are not affected); ADD 11, nothing left
    stack.stop_service("ipam")
    status, out = stack.cni("STATUS", v11)
    assert status != 0 and out["code"] == 50 and "ipam" in out["msg"], out
    status, out = stack.cni("ADD", v11, container_id="late", netns=netns.path(late))
    assert status != 0 and out["code"] == 11 and "ipam" in out["msg"], out
    assert pod_links(late) == set() and node_leftovers(stack) == []
    stack.start_service("ipam")
    wait_for(lambda: stack.cni("STATUS", v11)[0] == 0, 15.0, "front door reconnected to IPAM")

    # netmgr itself goes away: the executable answers STATUS 50, ADD 11
    stack.stop_service("netmgr")
    status, out = stack.cni("STATUS", v11)
    assert status != 0 and out["code"] == 50 and "cannot reach multinet" in out["msg"], out
    status, out = stack.cni("ADD", v11, container_id="late", netns=netns.path(late))
    assert status != 0 and out["code"] == 11, out


# ------------------------------------------------------------------------------------------------------ GC
def test_gc_removes_every_stale_attachment_of_each_network_and_nothing_else(
    stack: Stack, netns: Namespaces, held: Callable[[], Held]
) -> None:
    stack.start()
    stack.apply_seed()
    state = held()
    blue = stack.plugin_config("network-blue-conf", "1.1.0")
    red = stack.plugin_config("network-red-conf", "1.1.0")
    pods = {name: netns.new(name) for name in ("p1", "p2", "p3")}
    added: dict[tuple[str, str, str], dict[str, Any]] = {}
    plan = [("blue", "p1", "eth1"), ("blue", "p2", "eth1"), ("blue", "p3", "eth1"), ("blue", "p3", "net1")]
    plan += [("red", "p1", "eth2"), ("red", "p2", "eth2")]
    for network, pod, ifname in plan:
        conf = blue if network == "blue" else red
        added[(network, pod, ifname)] = ok(
            stack.cni("ADD", conf, container_id=f"ctr-{pod}", netns=netns.path(pods[pod]), ifname=ifname)
        )
    ports = node_ports(stack)
    assert len(ports) == len(plan)

    def host_port(key: tuple[str, str, str]) -> str:
        return str(added[key]["interfaces"][0]["name"])

    def host_routes() -> str:
        return sh(f"ip -n {stack.node_ns} route show table all proto 109").stdout

    valid = [{"containerID": "ctr-p1", "ifname": "eth1"}, {"containerID": "ctr-p3", "ifname": "eth1"}]
    ok(stack.cni("GC", blue | {"cni.dev/valid-attachments": valid}))
    stale = [("blue", "p2", "eth1"), ("blue", "p3", "net1")]
    live = [k for k in plan if k not in stale]
    for network, pod, ifname in stale:
        assert ifname not in pod_links(pods[pod])
        assert (network, f"ctr-{pod}", ifname) not in state.interfaces()
        assert not {r for r in state.reservations() if r[2:] == (f"ctr-{pod}", ifname) and r[0] == network}
        assert host_port((network, pod, ifname)) not in node_ports(stack)
    for network, pod, ifname in live:
        assert ifname in pod_links(pods[pod]), (network, pod, ifname)
        address = added[(network, pod, ifname)]["ips"][0]["address"]
        assert pod_addresses(pods[pod], ifname) == [address]
        assert (network, f"ctr-{pod}", ifname) in state.interfaces()
        assert host_port((network, pod, ifname)) in node_ports(stack)
        assert f"dev {host_port((network, pod, ifname))}" in host_routes()
        # the overlapping address of a live pod on the other network is still routed and reserved
        assert (network, address.split("/")[0], f"ctr-{pod}", ifname) in state.reservations()
    assert "192.168.0.0/16 via 169.254.1.1 dev eth1" in "\n".join(pod_routes(pods["p3"]))
    # the other network is collected by its own GC call; live keys of blue are not red's
    ok(stack.cni("GC", red | {"cni.dev/valid-attachments": valid}))
    assert state.interfaces("red") == {} and state.reservations("red") == set()
    assert {k[1:] for k in state.interfaces("blue")} == {("ctr-p1", "eth1"), ("ctr-p3", "eth1")}
    ok(stack.cni("GC", blue | {"cni.dev/valid-attachments": []}))
    # libcni also sends the misspelt key of spec 1.1.0's first text
    assert state.nothing() and node_leftovers(stack) == []
    assert all(pod_links(ns) == set() for ns in pods.values())


def test_gc_legacy_key_container_wide_entry_and_a_deleted_network(stack: Stack, netns: Namespaces) -> None:
    stack.start()
    stack.apply_seed()
    stack.ctl("apply", "-f", "-", stdin=TINY)
    tiny = stack.plugin_config("network-blue-conf", "1.1.0") | {"network": "tiny"}
    pod = netns.new("pod")
    ok(stack.cni("ADD", tiny, container_id="a", netns=netns.path(pod)))
    ok(stack.cni("GC", tiny | {"cni.dev/attachments": [{"containerID": "a", "ifname": "eth1"}]}))
    assert "eth1" in pod_links(pod)
    ok(stack.cni("GC", tiny | {"cni.dev/valid-attachments": [{"containerID": "a"}]}))  # no ifname: all of it
    assert "eth1" in pod_links(pod)
    stack.ctl("delete", "network", "tiny")  # removes its pod interfaces everywhere
    wait_for(lambda: "eth1" not in pod_links(pod), 15.0, "agent removed tiny's port")
    ok(stack.cni("GC", tiny | {"cni.dev/valid-attachments": []}))  # the network is gone: nothing to collect


# ------------------------------------------------------------------------------------------------------ chaining
CHAINED = """apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: blue-chained}
spec:
  config: '{"cniVersion": "1.0.0", "name": "blue-chained", "plugins": [
    {"type": "multinet", "network": "blue"},
    {"type": "tuning", "mtu": 1400, "mac": "02:42:00:00:00:42", "sysctl": {"net.core.somaxconn": "512"}},
    {"type": "bandwidth", "ingressRate": 8000000, "ingressBurst": 80000, "egressRate": 8000000, "egressBurst": 80000},
    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": false}]}'
"""


def nat_rules(stack: Stack) -> str:
    return sh(f"ip netns exec {stack.node_ns} iptables-save -t nat").stdout


def test_chain_with_debian_tuning_bandwidth_and_portmap(
    stack: Stack, netns: Namespaces, held: Callable[[], Held]
) -> None:
    """libcni's way, with the real Debian plugins after multinet: prevResult flows through the chain, CHECK gets
    the final result (tuning changed the MAC and MTU: expected, not a failure), DEL runs in reverse and every
    plugin removes its part. (iptables here is the nftables-backed iptables-nft, which portmap drives.)"""
    stack.start()
    stack.apply_seed()
    stack.ctl("apply", "-f", "-", stdin=CHAINED)
    stack.ctl("install-cni", "--bin-dir", str(stack.bin_dir), "--conf-dir", str(stack.conf_dir))
    conflist = stack.conflist("blue-chained")
    assert [p["type"] for p in conflist["plugins"]] == ["multinet", "tuning", "bandwidth", "portmap"]
    assert "cniVersions" not in conflist  # Debian's plugins (1.1.1) stop at CNI 1.0.0
    state = held()
    chain = Chain(stack, conflist)
    pod = netns.new("pod")
    mappings = {"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]}
    added = chain.add("ctr-1", netns.path(pod), "eth1", runtime=mappings)
    assert added.status == 0, added
    result = added.out
    ours = result["interfaces"][result["ips"][0]["interface"]]
    assert ours == {"name": "eth1", "mac": "02:42:00:00:00:42", "sandbox": netns.path(pod)}  # tuning's MAC
    host = result["interfaces"][0]["name"]
    link = json.loads(sh(f"ip -n {pod} -j link show eth1").stdout)[0]
    assert (link["mtu"], link["address"]) == (1400, "02:42:00:00:00:42")
    # a sysctl not named by interface: Debian's tuning 1.1.1 does not substitute IFNAME in sysctl keys on CHECK
    assert sh(f"ip netns exec {pod} cat /proc/sys/net/core/somaxconn").stdout.strip() == "512"
    qdiscs = sh(f"ip netns exec {stack.node_ns} tc qdisc show dev {host}").stdout
    assert "qdisc tbf" in qdiscs and "rate 8Mbit" in qdiscs, qdiscs  # bandwidth's ingress shaping, node side
    # the fast path (on by default) keeps off the shaped port and out of redirects into it: a multinet-only
    # pod's port runs its program, pings from it to the chained pod pass bandwidth's tbf (a redirect into the pod
    # would skip it). The pod answers: the node's neighbour entries followed the MAC tuning gave it.
    plain = netns.new("pod")
    plain_conf = stack.plugin_config("network-blue-conf")
    plain_result = ok(stack.cni("ADD", plain_conf, container_id="plain", netns=netns.path(plain), ifname="eth1"))
    plain_host = plain_result["interfaces"][0]["name"]
    wait_for(
        lambda: plain_host in tcx_programs(stack.node_ns),
        15.0,
        "the plain port on the fast path (attached in the background)",
    )
    assert host not in tcx_programs(stack.node_ns)  # the background attacher has run since: it kept off
    assert [n[:5] for n in tcx_programs(stack.node_ns)[plain_host]] == ["mnfpp"]
    address = result["ips"][0]["address"].split("/")[0]
    wait_for(
        lambda: sh(f"ip netns exec {plain} ping -c1 -W1 {address}", check=False).returncode == 0,
        15.0,
        "the chained pod answering",
    )
    shaped_before = qdisc_packets(stack.node_ns, host, "tbf")
    pinged = sh(f"ip netns exec {plain} ping -c 20 -i 0.02 -W 1 {address}", check=False).stdout
    assert "20 packets transmitted, 20 received" in pinged, pinged
    assert qdisc_packets(stack.node_ns, host, "tbf") - shaped_before >= 20
    # multinet's ADD again (a runtime retrying): its own pair is recognised by its peer, not by the MAC tuning
    # changed; the result says the MAC the pod has; the address, the interface and the traffic stay
    reserved = state.reservations("blue")
    env = {"CNI_CONTAINERID": "ctr-1", "CNI_NETNS": netns.path(pod), "CNI_IFNAME": "eth1", "CNI_ARGS": ""}
    again = chain._exec(conflist["plugins"][0], "ADD", env, {})
    assert again.status == 0, again
    assert again.out["interfaces"][again.out["ips"][0]["interface"]]["mac"] == "02:42:00:00:00:42", again.out
    assert state.reservations("blue") == reserved and "eth1" in pod_links(pod)
    # a repeat that fails (it asks for a MAC the pod does not have) undoes nothing: all of it is the first ADD's
    refused = chain._exec(conflist["plugins"][0], "ADD", env | {"CNI_ARGS": "MAC=02:00:00:00:00:99"}, {})
    assert refused.status != 0 and "02:00:00:00:00:99" in refused.out["msg"], refused
    assert state.reservations("blue") == reserved and "eth1" in pod_links(pod)
    pinged = sh(f"ip netns exec {plain} ping -c 3 -i 0.05 -W 1 {address}", check=False).stdout
    assert "3 packets transmitted, 3 received" in pinged, pinged
    ok(stack.cni("DEL", plain_conf, container_id="plain", netns=netns.path(plain), ifname="eth1"))
    assert f"--to-destination {address}:80" in nat_rules(stack)
    check = chain.check("ctr-1", netns.path(pod), "eth1")
    assert check.status == 0, check
    # a resource multinet made goes missing: CHECK (of the first plugin) says which
    sh(f"ip -n {pod} route del 192.168.0.0/16")
    check = chain.check("ctr-1", netns.path(pod), "eth1")
    assert check.status != 0 and check.plugin == "multinet" and check.out["code"] == 104, check
    assert "route to 192.168.0.0/16" in check.out["msg"], check
    deleted = chain.delete("ctr-1", netns.path(pod), "eth1", runtime=mappings)
    assert deleted.status == 0, deleted
    assert state.nothing() and node_leftovers(stack) == [] and pod_links(pod) == set()
    assert "bwp" not in sh(f"ip -n {stack.node_ns} -br link").stdout  # bandwidth's ifb is gone with it
    assert address not in nat_rules(stack)
    assert chain.delete("ctr-1", netns.path(pod), "eth1").status == 0  # DEL again: still fine


def test_podman_runs_the_chain(stack: Stack, held: Callable[[], Held], podman_factory: list[object]) -> None:
    """A real runtime (podman 4.3, CNI backend, libcni) runs the same conflist; podman runs in the node's network
    namespace (as a node's runtime does), so portmap's rules and bandwidth's qdiscs land there."""
    from tests.fixtures.podman import new_podman

    stack.start()
    stack.apply_seed()
    stack.ctl("apply", "-f", "-", stdin=CHAINED)
    stack.ctl("install-cni", "--bin-dir", str(stack.bin_dir), "--conf-dir", str(stack.conf_dir))
    podman = new_podman(podman_factory, stack.bin_dir, stack.conf_dir)  # type: ignore[arg-type]

    def run(*args: str) -> str:
        cmd = ["nsenter", f"--net=/var/run/netns/{stack.node_ns}", "podman", "--root", str(podman.root / "storage")]
        cmd += ["--runroot", str(podman.root / "runroot"), "--tmpdir", str(podman.root / "tmp"), "--runtime", "runc"]
        cmd += ["--cgroup-manager", "cgroupfs", *args]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CONTAINERS_CONF": str(podman.conf)}
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    state = held()
    rootfs = str(podman.rootfs)
    run(
        "run",
        "-d",
        "--name",
        "chained",
        "--network",
        "blue-chained",
        "-p",
        "18080:80",
        "--rootfs",
        rootfs,
        "sleep",
        "120",
    )
    assert run("exec", "chained", "cat", "/sys/class/net/eth0/mtu").strip() == "1400"
    assert run("exec", "chained", "cat", "/proc/sys/net/core/somaxconn").strip() == "512"
    ((_, address, _, _),) = state.reservations("blue")
    assert f"--to-destination {address}:80" in nat_rules(stack)
    # podman names the pod in CNI_ARGS (K8S_POD_NAME): `get pods -o json` lists it with its network-status
    (pod,) = json.loads(stack.ctl("get", "pods", "-o", "json").stdout)
    assert pod["name"] == "chained" and pod["interfaces"][0]["network"] == "blue", pod
    assert pod["network-status"][0]["name"] == "default/blue-chained" and status_problems(pod["network-status"]) == []

    def recorded_mac() -> str:
        (listed,) = json.loads(stack.ctl("get", "pods", "-o", "json").stdout)
        return str(listed["network-status"][0]["mac"])

    # tuning gave the pod another MAC after multinet's ADD: the agent saw it and the catalog's record follows
    wait_for(lambda: recorded_mac() == "02:42:00:00:00:42", 15.0, "the pod's network-status to show tuning's MAC")
    run("rm", "--force", "--time", "0", "chained")
    assert state.nothing() and node_leftovers(stack) == []
    assert f"{address}:80" not in nat_rules(stack)


# ------------------------------------------------------------------------------------------------------ Multus
def test_multus_delegate_from_the_networks_annotation(
    stack: Stack, netns: Namespaces, held: Callable[[], Held]
) -> None:
    """What Multus does for a pod annotated `k8s.v1.cni.cncf.io/networks`: per selection, the attachment
    definition's spec.config goes to the delegate as stdin (its own `name`, not the definition's), with
    CNI_IFNAME from the annotation (or net1, net2, ...), the K8S_* CNI_ARGS, `ips`/`mac` in runtimeConfig (the
    capabilities the config declares) and in args.cni, `default-route` in args.cni; DEL in reverse order."""
    stack.start()
    stack.apply_seed()
    state = held()
    sock = str(stack.state_dir / "run" / "cni.sock")  # Multus does not know it: the default path in production
    annotation = json.dumps(
        [
            {
                "name": "network-blue-conf",
                "interface": "net1",
                "ips": ["192.168.10.10/16"],
                "mac": "02:00:00:00:10:10",
                "default-route": ["169.254.1.1"],
            },
            {"name": "network-red-conf", "namespace": "default"},
        ]
    )
    selections = parse_networks(annotation, "default", taken=("eth0",))
    assert [s.interface for s in selections] == ["net1", "net2"]
    pod = netns.new("web")
    cid, uid = "0c1d2e3f4a5b", "7d3c1f9e-0000-4000-8000-000000000001"
    args = f"IgnoreUnknown=true;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID={cid}"
    args += f";K8S_POD_UID={uid}"
    env = {"CNI_ARGS": args, "MULTINET_CNI_SOCKET": sock}

    def delegate_conf(selection: Any, whole: bool = False) -> dict[str, Any]:
        nad = state.attachment_config(selection.name)  # the seed's shape: {"name": "network-blue", "plugins": [...]}
        if whole:  # the definition's whole config (a conflist), as some delegating plugins pass it
            conf = nad | {"cniVersion": "1.0.0"}
        else:  # the first plugin, as libcni runs it: the list's name and version injected
            conf = nad["plugins"][0] | {"type": "multinet", "name": nad["name"], "cniVersion": "1.0.0"}
        conf["capabilities"] = {"ips": True, "mac": True}
        conf["runtimeConfig"] = selection.runtime_config(conf["capabilities"])
        conf["args"] = {"cni": selection.args_cni()}
        return dict(conf)

    results = []
    for sel in selections:
        conf = delegate_conf(sel)
        assert conf["name"] != sel.name  # "network-blue", not "network-blue-conf"
        results.append(ok(stack.cni("ADD", conf, container_id=cid, netns=netns.path(pod), ifname=sel.interface,
                                    extra_env=env)))  # fmt: skip
    blue, red = results
    assert blue["ips"][0]["address"] == "192.168.10.10/32"
    assert blue["interfaces"][1] == {"name": "net1", "mac": "02:00:00:00:10:10", "sandbox": netns.path(pod)}
    assert red["interfaces"][1]["name"] == "net2"
    assert json.loads(sh(f"ip -n {pod} -j link show net1").stdout)[0]["address"] == "02:00:00:00:10:10"
    assert pod_addresses(pod, "net1") == ["192.168.10.10/32"]
    routes = pod_routes(pod)
    defaults = [r for r in routes if r.startswith("default")]
    assert len(defaults) == 1 and defaults[0].startswith("default via 169.254.1.1 dev net1 "), routes
    recorded = state.interfaces()
    assert {(k[0], k[2]) for k in recorded} == {("blue", "net1"), ("red", "net2")}
    for iface in recorded.values():
        assert (iface.pod.namespace, iface.pod.name, iface.pod.uid) == ("default", "web-0", uid)
        assert (iface.attachment_namespace, iface.attachment) in {
            ("default", "network-blue-conf"),
            ("default", "network-red-conf"),
        }
    # the pod's network-status, as `multinetctl get pods -o json` shows it
    pods = json.loads(stack.ctl("get", "pods", "-o", "json").stdout)
    (web,) = [p for p in pods if p["name"] == "web-0"]
    assert (web["namespace"], web["uid"], web["containers"]) == ("default", uid, [cid])
    status = web["network-status"]
    assert status_problems(status) == []
    mtu = recorded[("blue", cid, "net1")].mtu
    assert status == [
        {
            "name": "default/network-blue-conf",
            "interface": "net1",
            "ips": ["192.168.10.10"],
            "mac": "02:00:00:00:10:10",
            "mtu": mtu,
            "default": True,
            "dns": {},
            "gateway": ["169.254.1.1"],
        },
        {
            "name": "default/network-red-conf",
            "interface": "net2",
            "ips": [red["ips"][0]["address"].split("/")[0]],
            "mac": red["interfaces"][1]["mac"],
            "mtu": mtu,
            "default": False,
            "dns": {},
        },
    ]
    table = stack.ctl("get", "pods").stdout
    assert "default/web-0" in table and "net1" in table and "net2" in table

    # the text form, and the definition's whole config as stdin (network named by dataplane_options)
    (other,) = parse_networks("network-red-conf@eth1", "default")
    second = netns.new("api")
    conf = delegate_conf(other, whole=True)
    out = ok(stack.cni("ADD", conf, container_id="api-1", netns=netns.path(second), ifname="eth1", extra_env=env))
    assert out["interfaces"][1]["name"] == "eth1" and ("red", "api-1", "eth1") in state.interfaces()
    ok(stack.cni("DEL", conf, container_id="api-1", netns=netns.path(second), ifname="eth1", extra_env=env))

    for sel in reversed(selections):  # Multus deletes in reverse order
        conf = delegate_conf(sel)
        ok(stack.cni("DEL", conf, container_id=cid, netns=netns.path(pod), ifname=sel.interface, extra_env=env))
    assert state.nothing() and node_leftovers(stack) == [] and pod_links(pod) == set()
