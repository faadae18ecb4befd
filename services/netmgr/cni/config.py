"""The network configuration a runtime passes on stdin, validated (CNI SPEC.md section 1 and CONVENTIONS.md)."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..netconf import network_name_of
from .errors import CniFailure, Code

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST = "1.1.0"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
# the first spec version that knows each command
_COMMAND_SINCE = {"CHECK": (0, 4, 0), "GC": (1, 1, 0), "STATUS": (1, 1, 0)}


@dataclass(frozen=True, slots=True)
class NetConf:
    cni_version: str
    name: str
    network: str | None
    raw: dict[str, Any]
    requested_ips: tuple[str, ...] = ()
    requested_mac: str = ""
    prev_result: dict[str, Any] | None = None
    valid_attachments: tuple[tuple[str, str], ...] = ()
    dns: dict[str, Any] = field(default_factory=dict)


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def decode(stdin: bytes) -> dict[str, Any]:
    try:
        value = json.loads(stdin)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CniFailure(Code.DECODE_FAILURE, "network configuration on stdin is not valid JSON", str(exc)) from None
    if not isinstance(value, dict):
        raise CniFailure(Code.DECODE_FAILURE, "network configuration on stdin must be a JSON object")
    return value


def requested_version(raw: dict[str, Any]) -> str:
    version = raw.get("cniVersion", "")
    if not isinstance(version, str) or not version:
        raise CniFailure(
            Code.INVALID_CONFIG,
            "cniVersion is missing from the network configuration",
            f"use one of {', '.join(SUPPORTED_VERSIONS)}",
        )
    if version not in SUPPORTED_VERSIONS:
        raise CniFailure(
            Code.INCOMPATIBLE_VERSION,
            f"CNI version {version} is not supported",
            f"multinet supports {', '.join(SUPPORTED_VERSIONS)}",
        )
    return version


def parse(stdin: bytes, command: str) -> NetConf:
    raw = decode(stdin)
    version = requested_version(raw)
    since = _COMMAND_SINCE.get(command)
    if since and version_tuple(version) < since:
        need = ".".join(map(str, since))
        raise CniFailure(Code.INCOMPATIBLE_VERSION, f"{command} needs cniVersion {need} or later, got {version}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise CniFailure(
            Code.INVALID_CONFIG,
            f"network name {name!r} is invalid",
            "name must start with a letter or digit, followed by letters, digits, '_', '.' or '-'",
        )
    return NetConf(
        cni_version=version,
        name=name,
        network=_network(raw),
        raw=raw,
        requested_ips=_requested_ips(raw),
        requested_mac=_requested_mac(raw),
        prev_result=_object_or_none(raw, "prevResult"),
        valid_attachments=_valid_attachments(raw) if command == "GC" else (),
        dns=_object_or_none(raw, "dns") or {},
    )


def _network(raw: dict[str, Any]) -> str | None:
    try:
        return network_name_of(raw)
    except ValueError as exc:
        raise CniFailure(Code.INVALID_CONFIG, str(exc)) from None


def _object_or_none(raw: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise CniFailure(Code.INVALID_CONFIG, f"{key} must be a JSON object")
    return value


def _runtime_and_args(raw: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Where conventions put per-container requests: runtimeConfig (capabilities) and args.cni."""
    sources = []
    runtime = raw.get("runtimeConfig")
    if isinstance(runtime, dict):
        sources.append(("runtimeConfig", runtime))
    args = raw.get("args")
    if isinstance(args, dict) and isinstance(args.get("cni"), dict):
        sources.append(("args.cni", args["cni"]))
    return sources


def _requested_ips(raw: dict[str, Any]) -> tuple[str, ...]:
    found: list[str] = []
    for where, source in _runtime_and_args(raw):
        ips = source.get("ips")
        if ips is None:
            continue
        if not isinstance(ips, list) or not all(isinstance(ip, str) for ip in ips):
            raise CniFailure(Code.INVALID_CONFIG, f"{where}.ips must be a list of addresses")
        for ip in ips:
            try:
                found.append(str(ipaddress.ip_interface(ip).ip))
            except ValueError:
                raise CniFailure(Code.INVALID_CONFIG, f"{where}.ips: {ip!r} is not an IP address") from None
    return tuple(dict.fromkeys(found))


def _requested_mac(raw: dict[str, Any]) -> str:
    for where, source in _runtime_and_args(raw):
        mac = source.get("mac")
        if mac is None:
            continue
        if not isinstance(mac, str) or not _MAC.match(mac):
            raise CniFailure(Code.INVALID_CONFIG, f"{where}.mac {mac!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
        if int(mac[:2], 16) & 1:
            raise CniFailure(Code.INVALID_CONFIG, f"{where}.mac {mac} is a multicast address")
        return mac.lower()
    return ""


def _valid_attachments(raw: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    entries = raw.get("cni.dev/valid-attachments", raw.get("cni.dev/attachments", []))
    if not isinstance(entries, list):
        raise CniFailure(Code.INVALID_CONFIG, "cni.dev/valid-attachments must be a list")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("containerID"), str):
            raise CniFailure(Code.INVALID_CONFIG, f"cni.dev/valid-attachments[{i}] needs containerID and ifname")
        out.append((entry["containerID"], str(entry.get("ifname", ""))))
    return tuple(out)
