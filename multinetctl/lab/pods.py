"""Pods of the lab: a network namespace "on" a node, attached through the real `multinet` CNI plugin exactly as a
runtime would (exec, CNI_* environment, the attachment's conflist on stdin), detached with CNI DEL."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from typing import Any

from multinet.v1 import catalog_pb2, catalog_pb2_grpc

from services.common import rpc
from services.common.paths import unix_target

from ..install_cni import conflist
from .state import Attachment, LabDir, LabError, LabState, PodInfo
from .topology import ip, remove_netns

CNI_VERSION = "1.0.0"


def attachment_definitions(lab: LabDir) -> list[catalog_pb2.AttachmentDefinition]:
    async def query() -> list[catalog_pb2.AttachmentDefinition]:
        async with rpc.channel(unix_target(lab.run_dir / "netmgr.sock")) as channel:
            reply = await catalog_pb2_grpc.CatalogStub(channel).ListAttachments(catalog_pb2.ListRequest(), timeout=5)
        return list(reply.attachments)

    return asyncio.run(query())


def resolve(lab: LabDir, wanted: list[str]) -> list[catalog_pb2.AttachmentDefinition]:
    """Each entry names a network (its first attachment definition is used) or an attachment definition."""
    atts = attachment_definitions(lab)
    chosen = []
    for name in wanted:
        match = [a for a in atts if a.name == name] or [a for a in atts if a.network == name]
        if not match:
            raise LabError(f"no attachment definition for {name!r}: apply a Network and a NetworkAttachmentDefinition")
        chosen.append(match[0])
    return chosen


def cni(lab: LabDir, state: LabState, pod: PodInfo, command: str, att: Attachment) -> tuple[int, Any]:
    defs = {a.name: a for a in attachment_definitions(lab)} if command == "ADD" else {}
    definition = defs.get(att.attachment)
    if definition is None:
        definition = catalog_pb2.AttachmentDefinition(
            name=att.attachment, network=att.network, config_json=json.dumps({"network": att.network})
        )
    conf = conflist(definition, CNI_VERSION)
    plugin = dict(conf["plugins"][0], name=conf["name"], cniVersion=conf["cniVersion"])
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": pod.container_id,
        "CNI_NETNS": f"/var/run/netns/{pod.netns}",
        "CNI_IFNAME": att.ifname,
        "CNI_PATH": str(lab.plugin(pod.node).parent),
        "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={state.name};K8S_POD_NAME={pod.name}",
    }
    out = subprocess.run(
        [str(lab.plugin(pod.node))], input=json.dumps(plugin).encode(), env=env, capture_output=True, timeout=120
    )
    text = out.stdout.decode()
    return out.returncode, json.loads(text) if text.strip() else None


def run_pod(lab: LabDir, state: LabState, name: str, node: str, networks: list[str]) -> dict[str, Any]:
    if name in state.pods:
        raise LabError(f"pod {name!r} already exists")
    state.node(node)
    definitions = resolve(lab, networks)
    pod = PodInfo(name, node, f"{state.name}-pod-{name}", f"{state.name}-{name}")
    ip("netns", "add", pod.netns)
    ip("-n", pod.netns, "link", "set", "lo", "up")
    report: dict[str, Any] = {"pod": name, "node": node, "netns": pod.netns, "interfaces": []}
    try:
        for i, definition in enumerate(definitions, start=1):
            att = Attachment(definition.network, definition.name, f"eth{i}")
            status, result = cni(lab, state, pod, "ADD", att)
            if status != 0:
                raise LabError(f"CNI ADD {att.ifname} on {att.network} failed: {result}")
            pod.attachments.append(att)
            ours = result["interfaces"][1] if len(result.get("interfaces", [])) > 1 else {}
            report["interfaces"].append(
                {
                    "ifname": att.ifname,
                    "network": att.network,
                    "attachment": att.attachment,
                    "ips": [e["address"] for e in result.get("ips", [])],
                    "mac": ours.get("mac"),
                }
            )
    except BaseException:
        for att in reversed(pod.attachments):
            cni(lab, state, pod, "DEL", att)
        remove_netns(pod.netns)
        raise
    state.pods[name] = pod
    return report


def rm_pod(lab: LabDir, state: LabState, name: str) -> None:
    pod = state.pods.get(name)
    if pod is None:
        raise LabError(f"no pod {name!r} in lab {state.name}")
    for att in reversed(pod.attachments):
        status, result = cni(lab, state, pod, "DEL", att)
        if status != 0:
            raise LabError(f"CNI DEL {att.ifname} of {name} failed: {result}")
    remove_netns(pod.netns)
    del state.pods[name]
