"""The CNI_* environment of one invocation, validated as SPEC.md and the reference `skel` require."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.common.validate import container_id_problem, ifname_problem, unicast_mac_problem

from .errors import CniFailure, Code

COMMANDS = ("ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION")
_REQUIRED: dict[str, tuple[str, ...]] = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    "GC": ("CNI_PATH",),
    "STATUS": (),
    "VERSION": (),
}


@dataclass(frozen=True, slots=True)
class CniEnv:
    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: dict[str, str] = field(default_factory=dict)
    path: str = ""

    @property
    def pod_namespace(self) -> str:
        return self.args.get("K8S_POD_NAMESPACE", "")

    @property
    def pod_name(self) -> str:
        return self.args.get("K8S_POD_NAME", "")

    @property
    def pod_uid(self) -> str:
        return self.args.get("K8S_POD_UID", "")

    def requested_ips(self) -> tuple[str, ...]:
        """CNI_ARGS IP=a[,b] (the convention host-local honours; podman's `--network net:ip=`)."""
        found = []
        for item in filter(None, self.args.get("IP", "").split(",")):
            try:
                found.append(str(ipaddress.ip_interface(item.strip()).ip))
            except ValueError:
                raise CniFailure(Code.INVALID_ENV, f"CNI_ARGS IP={item!r} is not an IP address") from None
        return tuple(found)

    def requested_mac(self) -> str:
        mac = self.args.get("MAC", "")
        problem = unicast_mac_problem(mac) if mac else None
        if problem:
            raise CniFailure(Code.INVALID_ENV, f"CNI_ARGS MAC={mac!r} {problem}")
        return mac.lower()


def parse_env(env: Mapping[str, str]) -> CniEnv:
    command = env.get("CNI_COMMAND", "")
    if not command:
        raise CniFailure(Code.INVALID_ENV, "CNI_COMMAND is not set", "set CNI_COMMAND to one of " + ", ".join(COMMANDS))
    if command not in COMMANDS:
        raise CniFailure(Code.INVALID_ENV, f"CNI_COMMAND {command!r} is not one of {', '.join(COMMANDS)}")
    for name in _REQUIRED[command]:
        if not env.get(name):
            raise CniFailure(Code.INVALID_ENV, f"{name} is not set", f"{command} needs {', '.join(_REQUIRED[command])}")
    parsed = CniEnv(
        command=command,
        container_id=env.get("CNI_CONTAINERID", ""),
        netns=env.get("CNI_NETNS", ""),
        ifname=env.get("CNI_IFNAME", ""),
        args=parse_args(env.get("CNI_ARGS", "")),
        path=env.get("CNI_PATH", ""),
    )
    if parsed.container_id:
        check_container_id(parsed.container_id)
    if parsed.ifname:
        check_ifname(parsed.ifname, "CNI_IFNAME", Code.INVALID_ENV)
    return parsed


def check_container_id(value: str) -> None:
    problem = container_id_problem(value)
    if problem:
        raise CniFailure(Code.INVALID_ENV, f"CNI_CONTAINERID {value!r} is invalid", f"it {problem}")


def check_ifname(value: str, what: str, code: Code) -> None:
    problem = ifname_problem(value)
    if problem:
        raise CniFailure(code, f"{what} {value!r} {problem}", "use a Linux interface name such as eth1 or net1")


def parse_args(raw: str) -> dict[str, str]:
    """CNI_ARGS "K=V;K=V". Unknown keys are kept (and ignored): runtimes pass their own (IgnoreUnknown=1)."""
    args: dict[str, str] = {}
    for pair in filter(None, raw.split(";")):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CniFailure(Code.INVALID_ENV, f"CNI_ARGS entry {pair!r} is not KEY=VALUE", f"CNI_ARGS was {raw!r}")
        args[key] = value
    return args
