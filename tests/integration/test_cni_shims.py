"""The native build of the CNI executable (cni/multinet.c) and the Python shim (cni/multinet.py) speak the same
protocol and print the same answers: the same invocations through both, against one stack, compared."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from multinetctl.install_cni import NATIVE_SHIM, install_plugin
from tests.fixtures.netns import Namespaces
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.integration


def run(plugin: Path, command: str, stdin: bytes, env: dict[str, str]) -> tuple[int, Any]:
    full = {"PATH": os.environ["PATH"], "CNI_COMMAND": command} | env
    if command == "":
        del full["CNI_COMMAND"]
    out = subprocess.run([str(plugin)], input=stdin, env=full, capture_output=True, timeout=60)
    text = out.stdout.decode()
    return out.returncode, json.loads(text) if text.strip() else None


def normalised(answer: Any) -> Any:
    """Results differ only by what belongs to each container: its addresses, MACs, host interface, sandbox."""
    if not isinstance(answer, dict) or "interfaces" not in answer:
        return answer
    return {
        "cniVersion": answer["cniVersion"],
        "interfaces": len(answer["interfaces"]),
        "ips": [ip["address"].split("/")[1] for ip in answer["ips"]],
        "routes": answer["routes"],
    }


def test_native_and_python_executables_answer_alike(stack: Stack, netns: Namespaces, tmp_path: Path) -> None:
    if not NATIVE_SHIM.exists():
        pytest.fail(f"{NATIVE_SHIM} is not built: scripts/setup.sh builds it (needs a C compiler)")
    native, python = tmp_path / "native" / "multinet", tmp_path / "python" / "multinet"
    stack.start()
    socket_path = stack.state_dir / "run" / "cni.sock"
    assert install_plugin(native, socket_path, shim="native") == "native"
    assert install_plugin(python, socket_path, shim="python") == "python"
    stack.apply_seed()
    blue = json.dumps(stack.plugin_config("network-blue-conf")).encode()
    socket_text = str(socket_path)
    cases: list[tuple[str, str, bytes, dict[str, str]]] = [
        ("VERSION, no config", "VERSION", b"", {}),
        ("VERSION, 0.4.0", "VERSION", b'{"cniVersion": "0.4.0"}', {}),
        ("VERSION, unknown version", "VERSION", b'{"cniVersion": "9.9"}', {}),
        ("no CNI_COMMAND", "", blue, {}),
        ("bad CNI_COMMAND", "FLY", blue, {}),
        (
            "malformed JSON",
            "ADD",
            b'{"cniVersion": ',
            {
                "MULTINET_CNI_SOCKET": socket_text,
                "CNI_CONTAINERID": "x",
                "CNI_NETNS": "/x",
                "CNI_IFNAME": "eth1",
                "CNI_PATH": "/x",
            },
        ),
        ("missing CNI_NETNS", "ADD", blue, {"CNI_CONTAINERID": "x", "CNI_IFNAME": "eth1", "CNI_PATH": "/x"}),
        (
            "unknown network",
            "ADD",
            blue.replace(b'"blue"', b'"green"'),
            {"CNI_CONTAINERID": "x", "CNI_NETNS": "/x", "CNI_IFNAME": "eth1", "CNI_PATH": "/x"},
        ),
        (
            "nothing listening",
            "ADD",
            blue,
            {
                "MULTINET_CNI_SOCKET": "/tmp/no-multinet-here.sock",
                "CNI_CONTAINERID": "x",
                "CNI_NETNS": "/x",
                "CNI_IFNAME": "eth1",
                "CNI_PATH": "/x",
            },
        ),
        (
            "STATUS, nothing listening",
            "STATUS",
            blue.replace(b'"1.0.0"', b'"1.1.0"'),
            {"MULTINET_CNI_SOCKET": "/tmp/no-multinet-here.sock"},
        ),
    ]
    huge = json.dumps(json.loads(blue) | {"padding": "x" * (9 * 1024 * 1024)}).encode()  # netmgr refuses > 8 MiB
    cases.append(
        (
            "a configuration too large",
            "ADD",
            huge,
            {"CNI_CONTAINERID": "x", "CNI_NETNS": "/x", "CNI_IFNAME": "eth1", "CNI_PATH": "/x"},
        )
    )
    evil = json.loads(blue) | {"args": {"cni": {"multinet_socket": "/tmp/evil.sock"}}, "multinet_socket": "/x.sock"}
    cases.append(("a socket named in the configuration is ignored", "VERSION", json.dumps(evil).encode(), {}))
    for label, command, stdin, env in cases:
        assert run(native, command, stdin, env) == run(python, command, stdin, env), label
    status, out = run(
        native, "ADD", huge, {"CNI_CONTAINERID": "x", "CNI_NETNS": "/x", "CNI_IFNAME": "eth1", "CNI_PATH": "/x"}
    )
    assert status == 1 and out["code"] == 6 and "8 MiB" in out["msg"], out
    for i, plugin in enumerate((native, python)):
        pod = netns.new(f"s{i}")
        env = {"CNI_CONTAINERID": f"shim{i}", "CNI_NETNS": netns.path(pod), "CNI_IFNAME": "eth1", "CNI_PATH": "/x"}
        status, added = run(plugin, "ADD", blue, env)
        assert status == 0, added
        assert normalised(added) == {
            "cniVersion": "1.0.0",
            "interfaces": 2,
            "ips": ["32"],
            "routes": [{"dst": "192.168.0.0/16", "gw": "169.254.1.1"}],
        }
        check = json.dumps(json.loads(blue) | {"prevResult": added}).encode()
        assert run(plugin, "CHECK", check, env) == (0, None)
        assert run(plugin, "DEL", blue, env) == (0, None)
    assert stack.reservations() == []


def test_a_socket_named_by_the_configuration_is_never_used(stack: Stack, netns: Namespaces, tmp_path: Path) -> None:
    """Multus copies a pod's `cni-args` annotation into the configuration's `args`: a pod must not be able to
    choose where the root-run plugin sends the CNI environment."""
    stack.start()
    stack.apply_seed()
    evil_path = tmp_path / "evil.sock"
    evil = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    evil.bind(str(evil_path))
    evil.listen(8)
    evil.setblocking(False)
    try:
        conf = stack.plugin_config("network-blue-conf") | {
            "args": {"cni": {"multinet_socket": str(evil_path)}},
            "multinet_socket": str(evil_path),
        }
        for i, shim in enumerate(("native", "python")):
            plugin = tmp_path / shim / "multinet"
            install_plugin(plugin, stack.state_dir / "run" / "cni.sock", shim=shim)
            pod = netns.new(f"e{i}")
            env = {"CNI_CONTAINERID": f"evil{i}", "CNI_NETNS": netns.path(pod), "CNI_IFNAME": "eth1", "CNI_PATH": "/x"}
            status, out = run(plugin, "ADD", json.dumps(conf).encode(), env)
            assert status == 0, out
            assert run(plugin, "DEL", json.dumps(conf).encode(), env) == (0, None)
        with pytest.raises(BlockingIOError):
            evil.accept()  # nobody ever connected
    finally:
        evil.close()
