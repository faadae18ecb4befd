"""CNI environment and configuration parsing: every bad input gets the spec's error code and a named field."""

from __future__ import annotations

import json

import pytest

from services.netmgr.cni import config
from services.netmgr.cni.env import parse_args, parse_env
from services.netmgr.cni.errors import CniFailure, Code

BASE = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "c1",
    "CNI_NETNS": "/var/run/netns/x",
    "CNI_IFNAME": "eth1",
    "CNI_PATH": "/opt/cni/bin",
}


def failure(fn: object, *args: object) -> CniFailure:
    with pytest.raises(CniFailure) as info:
        fn(*args)  # type: ignore[operator]
    return info.value


@pytest.mark.parametrize("missing", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"])
def test_add_names_each_missing_variable(missing: str) -> None:
    env = {k: v for k, v in BASE.items() if k != missing}
    err = failure(parse_env, env)
    assert err.code == Code.INVALID_ENV
    assert missing in err.msg


def test_del_does_not_need_netns() -> None:
    env = {k: v for k, v in BASE.items() if k != "CNI_NETNS"} | {"CNI_COMMAND": "DEL"}
    assert parse_env(env).netns == ""


@pytest.mark.parametrize("command", ["", "FOO", "add"])
def test_bad_command(command: str) -> None:
    assert failure(parse_env, BASE | {"CNI_COMMAND": command}).code == Code.INVALID_ENV


@pytest.mark.parametrize("ifname", ["", ".", "..", "a" * 16, "eth/1", "eth:1", "eth 1", "eth\t1"])
def test_invalid_ifnames(ifname: str) -> None:
    env = BASE | {"CNI_IFNAME": ifname}
    err = failure(parse_env, env)
    assert err.code == Code.INVALID_ENV


@pytest.mark.parametrize("ifname", ["eth1", "net1", "a" * 15, "memif0", "eth1.100"])
def test_valid_ifnames(ifname: str) -> None:
    assert parse_env(BASE | {"CNI_IFNAME": ifname}).ifname == ifname


@pytest.mark.parametrize("cid", ["-abc", "_x", "a b", "a/b", ""])
def test_invalid_container_ids(cid: str) -> None:
    env = BASE | {"CNI_CONTAINERID": cid}
    assert failure(parse_env, env).code == Code.INVALID_ENV


def test_cni_args_parsing() -> None:
    args = parse_args("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u")
    assert args["K8S_POD_NAME"] == "p"
    assert failure(parse_args, "K8S_POD_NAME").code == Code.INVALID_ENV


def conf(**extra: object) -> bytes:
    return json.dumps({"cniVersion": "1.0.0", "name": "blue-att", "type": "multinet", **extra}).encode()


def test_malformed_json_is_decode_failure() -> None:
    assert failure(config.parse, b"{not json", "ADD").code == Code.DECODE_FAILURE
    assert failure(config.parse, b"[1, 2]", "ADD").code == Code.DECODE_FAILURE


def test_unsupported_version_is_incompatible() -> None:
    err = failure(config.parse, json.dumps({"cniVersion": "9.9.9", "name": "n"}).encode(), "ADD")
    assert err.code == Code.INCOMPATIBLE_VERSION
    assert "9.9.9" in err.msg


def test_check_needs_0_4_and_status_needs_1_1() -> None:
    old = json.dumps({"cniVersion": "0.3.1", "name": "n"}).encode()
    assert failure(config.parse, old, "CHECK").code == Code.INCOMPATIBLE_VERSION
    assert failure(config.parse, conf(), "STATUS").code == Code.INCOMPATIBLE_VERSION
    assert config.parse(json.dumps({"cniVersion": "1.1.0", "name": "n"}).encode(), "STATUS").name == "n"


def test_invalid_name() -> None:
    assert failure(config.parse, conf(name="-bad"), "ADD").code == Code.INVALID_CONFIG


def test_network_from_dataplane_options_in_a_conflist() -> None:
    raw = conf(
        plugins=[{"type": "calico", "ipam": {"type": "whereabouts"}}, {"dataplane_options": {"network_name": "blue"}}]
    )
    assert config.parse(raw, "ADD").network == "blue"


def test_runtime_config_ips_and_mac() -> None:
    parsed = config.parse(conf(runtimeConfig={"ips": ["10.1.0.9/24"], "mac": "02:AA:bb:cc:dd:ee"}), "ADD")
    assert parsed.requests.ips == ("10.1.0.9",)
    assert parsed.requests.mac == "02:aa:bb:cc:dd:ee"
    assert failure(config.parse, conf(runtimeConfig={"mac": "01:00:00:00:00:01"}), "ADD").code == Code.INVALID_CONFIG
    assert failure(config.parse, conf(runtimeConfig={"ips": ["nope"]}), "ADD").code == Code.INVALID_CONFIG


def test_gc_valid_attachments() -> None:
    raw = json.dumps(
        {"cniVersion": "1.1.0", "name": "n", "cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth1"}]}
    ).encode()
    assert config.parse(raw, "GC").valid_attachments == (("a", "eth1"),)


# ------------------------------------------------------------------------------------------------ cniVersions (1.1)
def versions_conf(**extra: object) -> bytes:
    return json.dumps({"name": "n", "type": "multinet", **extra}).encode()


def test_cni_versions_picks_the_highest_common_version() -> None:
    assert config.parse(versions_conf(cniVersions=["0.4.0", "1.1.0", "1.0.0"]), "ADD").cni_version == "1.1.0"
    assert config.parse(versions_conf(cniVersions=["0.3.1", "9.0.0"]), "ADD").cni_version == "0.3.1"


def test_cni_version_wins_over_the_list() -> None:
    raw = versions_conf(cniVersion="1.0.0", cniVersions=["0.4.0", "1.0.0", "1.1.0"])
    assert config.parse(raw, "ADD").cni_version == "1.0.0"


@pytest.mark.parametrize(
    ("extra", "code", "fragment"),
    [
        ({"cniVersions": ["9.0.0", "8.1.0"]}, Code.INCOMPATIBLE_VERSION, "none of cniVersions"),
        ({"cniVersions": []}, Code.INVALID_CONFIG, "non-empty list"),
        ({"cniVersions": "1.0.0"}, Code.INVALID_CONFIG, "non-empty list"),
        ({"cniVersions": ["1.0"]}, Code.INVALID_CONFIG, "is not a version"),
        ({"cniVersion": 1}, Code.INVALID_CONFIG, "must be a string"),
        ({}, Code.INVALID_CONFIG, "cniVersion is missing"),
    ],
)
def test_cni_versions_errors(extra: dict[str, object], code: Code, fragment: str) -> None:
    err = failure(config.parse, versions_conf(**extra), "ADD")
    assert err.code == code and fragment in err.msg, err.msg


def test_gc_and_status_with_cni_versions_only() -> None:
    assert config.parse(versions_conf(cniVersions=["1.0.0", "1.1.0"]), "GC").cni_version == "1.1.0"
    assert failure(config.parse, versions_conf(cniVersions=["1.0.0"]), "STATUS").code == Code.INCOMPATIBLE_VERSION


# ------------------------------------------------------------------------------------------------ code 2 and requests
@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"ipMasq": True}, "ipMasq: true"),
        ({"runtimeConfig": {"deviceID": "0000:03:00.1"}}, "runtimeConfig.deviceID: '0000:03:00.1'"),
        ({"runtimeConfig": {"infinibandGUID": "c2:11:22:33:44:55:66:77"}}, "runtimeConfig.infinibandGUID"),
        ({"dataplane_options": {"network_name": "blue", "vrf": 7}}, "dataplane_options.vrf: 7"),
        (
            {"plugins": [{"type": "calico"}, {"dataplane_options": {"network_name": "b", "memif": True}}]},
            "dataplane_options.memif: True",
        ),
        ({"runtimeConfig": {"mac": "80:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22"}}, "InfiniBand"),
    ],
)
def test_unsupported_fields_are_code_2_naming_key_and_value(extra: dict[str, object], fragment: str) -> None:
    err = failure(config.parse, conf(**extra), "ADD")
    assert err.code == Code.UNSUPPORTED_FIELD
    assert fragment in err.msg + err.details, err.msg


def test_foreign_capabilities_and_ipmasq_false_are_accepted() -> None:
    parsed = config.parse(
        conf(ipMasq=False, runtimeConfig={"portMappings": [{"hostPort": 80}], "bandwidth": {}, "ips": ["10.0.0.1"]}),
        "ADD",
    )
    assert parsed.requests.ips == ("10.0.0.1",)


def test_args_cni_requests_of_a_delegating_plugin() -> None:
    parsed = config.parse(
        conf(args={"cni": {"ips": ["10.1.0.7"], "mac": "02:00:00:00:00:07", "default-route": ["10.1.0.1"]}}), "ADD"
    )
    assert parsed.requests.ips == ("10.1.0.7",)
    assert parsed.requests.mac == "02:00:00:00:00:07"
    assert parsed.requests.default_route and parsed.requests.default_route_families == frozenset({4})


def test_runtime_config_wins_over_args_cni() -> None:
    parsed = config.parse(conf(runtimeConfig={"ips": ["10.0.0.1"]}, args={"cni": {"ips": ["10.0.0.2"]}}), "ADD")
    assert parsed.requests.ips == ("10.0.0.1",)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, (False, frozenset())),
        ({"default_route": True}, (True, frozenset())),
        ({"default-route": ["fd00::1"]}, (True, frozenset({6}))),
        ({"runtimeConfig": {"default-route": ["10.0.0.1", "fd00::1"]}}, (True, frozenset({4, 6}))),
        ({"default_route": True, "args": {"cni": {"default-route": ["10.0.0.1"]}}}, (True, frozenset())),
        ({"default_route": False}, (False, frozenset())),
    ],
)
def test_default_route_conventions(extra: dict[str, object], expected: tuple[bool, frozenset[int]]) -> None:
    requests = config.parse(conf(**extra), "ADD").requests
    assert (requests.default_route, requests.default_route_families) == expected


@pytest.mark.parametrize(
    "value", ["yes", ["gw"], ["10.0.0.1", "10.0.0.2"], [1]], ids=["string", "not-ip", "two-v4", "number"]
)
def test_bad_default_route(value: object) -> None:
    assert failure(config.parse, conf(**{"default-route": value}), "ADD").code == Code.INVALID_CONFIG


def test_check_needs_prev_result() -> None:
    err = failure(config.parse, conf(), "CHECK")
    assert err.code == Code.INVALID_CONFIG and "prevResult" in err.msg
    assert config.parse(conf(prevResult={"cniVersion": "1.0.0"}), "CHECK").prev_result == {"cniVersion": "1.0.0"}
