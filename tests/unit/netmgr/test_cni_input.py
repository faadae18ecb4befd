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
    assert parsed.requested_ips == ("10.1.0.9",)
    assert parsed.requested_mac == "02:aa:bb:cc:dd:ee"
    assert failure(config.parse, conf(runtimeConfig={"mac": "01:00:00:00:00:01"}), "ADD").code == Code.INVALID_CONFIG
    assert failure(config.parse, conf(runtimeConfig={"ips": ["nope"]}), "ADD").code == Code.INVALID_CONFIG


def test_gc_valid_attachments() -> None:
    raw = json.dumps(
        {"cniVersion": "1.1.0", "name": "n", "cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth1"}]}
    ).encode()
    assert config.parse(raw, "GC").valid_attachments == (("a", "eth1"),)
