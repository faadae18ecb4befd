"""The network configuration a runtime passes on stdin, validated (CNI SPEC.md section 1 and CONVENTIONS.md)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..netconf import network_name_of
from .errors import CniFailure, Code
from .requests import Requests, parse_requests

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST = "1.1.0"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
# the first spec version that knows each command
_COMMAND_SINCE = {"CHECK": (0, 4, 0), "GC": (1, 1, 0), "STATUS": (1, 1, 0)}


@dataclass(frozen=True, slots=True)
class NetConf:
    cni_version: str
    name: str
    network: str | None
    raw: dict[str, Any]
    requests: Requests = field(default_factory=Requests)
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
    """`cniVersion`, or (CNI 1.1) the highest version of `cniVersions` that multinet supports. A runtime resolves
    `cniVersions` itself and passes the chosen `cniVersion`, which then wins; a config carrying only the list
    (written by hand, or by a runtime that passes it through) gets the highest common version."""
    version = raw.get("cniVersion")
    versions = _cni_versions(raw)
    if version is not None and not isinstance(version, str):
        raise CniFailure(Code.INVALID_CONFIG, f'cniVersion must be a string such as "1.0.0", got {version!r}')
    if version:
        if version not in SUPPORTED_VERSIONS:
            raise CniFailure(
                Code.INCOMPATIBLE_VERSION,
                f"CNI version {version} is not supported",
                f"multinet supports {', '.join(SUPPORTED_VERSIONS)}",
            )
        return version
    if versions is None:
        raise CniFailure(
            Code.INVALID_CONFIG,
            "cniVersion is missing from the network configuration",
            f"use one of {', '.join(SUPPORTED_VERSIONS)}",
        )
    common = [v for v in versions if v in SUPPORTED_VERSIONS]
    if not common:
        raise CniFailure(
            Code.INCOMPATIBLE_VERSION,
            f"none of cniVersions {versions} is supported",
            f"multinet supports {', '.join(SUPPORTED_VERSIONS)}",
        )
    return max(common, key=version_tuple)


def _cni_versions(raw: dict[str, Any]) -> list[str] | None:
    versions = raw.get("cniVersions")
    if versions is None:
        return None
    if not isinstance(versions, list) or not versions or not all(isinstance(v, str) for v in versions):
        raise CniFailure(
            Code.INVALID_CONFIG, f"cniVersions must be a non-empty list of version strings, got {versions!r}"
        )
    for v in versions:
        if not _VERSION.match(v):
            raise CniFailure(Code.INVALID_CONFIG, f'cniVersions: {v!r} is not a version such as "1.1.0"')
    return list(versions)


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
    prev_result = _object_or_none(raw, "prevResult")
    if command == "CHECK" and prev_result is None:
        raise CniFailure(
            Code.INVALID_CONFIG,
            "CHECK needs prevResult in the network configuration",
            "pass the result of the preceding ADD as prevResult (SPEC.md: CHECK)",
        )
    return NetConf(
        cni_version=version,
        name=name,
        network=_network(raw),
        raw=raw,
        requests=parse_requests(raw) if command in ("ADD", "CHECK") else Requests(),
        prev_result=prev_result,
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


def _valid_attachments(raw: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    entries = raw.get("cni.dev/valid-attachments", raw.get("cni.dev/attachments", []))
    if not isinstance(entries, list):
        raise CniFailure(
            Code.INVALID_CONFIG, "cni.dev/valid-attachments must be a list of {containerID, ifname} objects"
        )
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("containerID"), str):
            raise CniFailure(
                Code.INVALID_CONFIG,
                f"cni.dev/valid-attachments[{i}] needs containerID and ifname, got {entry!r}",
            )
        ifname = entry.get("ifname", "")  # missing: every attachment of the container is valid (GC keeps more)
        if not isinstance(ifname, str):
            raise CniFailure(Code.INVALID_CONFIG, f"cni.dev/valid-attachments[{i}].ifname must be a string")
        out.append((entry["containerID"], ifname))
    return tuple(out)
