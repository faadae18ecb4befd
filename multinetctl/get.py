"""`get`: tables (or JSON) of networks, attachment definitions, pods, nodes, reservations, agent.

`get pods` lists one row per pod interface; `-o json` gives one entry per pod with its Network Plumbing WG
`k8s.v1.cni.cncf.io/network-status` list (what a controller publishes as the pod's annotation)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from multinet.v1 import agent_pb2, agent_pb2_grpc, catalog_pb2, catalog_pb2_grpc, ipam_pb2, ipam_pb2_grpc

from services.common.paths import InstancePaths, unix_target
from services.netmgr.catalog.status import pod_key, pods_status

from .client import explain, open_channel


def get(args: argparse.Namespace) -> int:
    paths = InstancePaths.resolve(args.state_dir)
    # --server names the service that answers this kind: netmgr, or IPAM (reservations), or an agent (agent)
    service = {"reservations": "ipam", "agent": "agent"}.get(args.kind, "netmgr")
    target = args.server or unix_target(paths.socket(service))
    try:
        rows = asyncio.run(_fetch(target, args))
    except grpc.aio.AioRpcError as exc:
        print(f"error: {explain(exc, target)}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows)
    return 0


async def _fetch(target: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    listing = catalog_pb2.ListRequest(network=args.network, node=args.node)
    async with open_channel(target) as channel:
        if args.kind == "networks":
            nets = await catalog_pb2_grpc.CatalogStub(channel).ListNetworks(listing, timeout=10)
            return [
                {
                    "name": n.name,
                    "vni": n.vni,
                    "range": ",".join(n.ranges),
                    "mtu": n.mtu or "auto",
                    "revision": n.revision,
                }
                for n in nets.networks
            ]
        if args.kind == "attachments":
            atts = await catalog_pb2_grpc.CatalogStub(channel).ListAttachments(listing, timeout=10)
            return [
                {
                    "namespace": a.namespace,
                    "name": a.name,
                    "network": a.network,
                    "ranges": ",".join(r.cidr for r in a.ipam.ranges),
                }
                for a in atts.attachments
            ]
        if args.kind == "pods":
            pods = await catalog_pb2_grpc.CatalogStub(channel).ListPodInterfaces(listing, timeout=10)
            if args.output == "json":
                return _pods_json(pods.interfaces)
            return [_pod_row(i) for i in sorted(pods.interfaces, key=lambda i: (pod_key(i), i.revision))]
        if args.kind == "nodes":
            nodes = await catalog_pb2_grpc.CatalogStub(channel).ListNodes(listing, timeout=10)
            return [{"name": n.name, "underlay": n.underlay_ip or "-"} for n in nodes.nodes]
        if args.kind == "reservations":
            res = await ipam_pb2_grpc.IpamStub(channel).ListReservations(
                ipam_pb2.ListReservationsRequest(network=args.network), timeout=10
            )
            return [
                {
                    "network": r.network,
                    "address": r.address,
                    "container": r.owner.container_id[:12],
                    "ifname": r.owner.ifname,
                    "pod": r.owner.pod_ref or "-",
                }
                for r in res.reservations
            ]
        state = await agent_pb2_grpc.AgentStub(channel).GetState(agent_pb2.AgentStateRequest(), timeout=10)
        return [MessageToDict(state, preserving_proto_field_name=True)]


def _pods_json(interfaces: Sequence[catalog_pb2.PodInterface]) -> list[dict[str, Any]]:
    """Per pod: its network-status list, plus multinet's own view of each interface (network, node side)."""
    pods = pods_status(interfaces)
    by_pod: dict[tuple[str, str, str], list[catalog_pb2.PodInterface]] = {}
    for iface in interfaces:
        by_pod.setdefault(pod_key(iface), []).append(iface)
    for pod in pods:
        ifaces = sorted(by_pod[(pod["namespace"], pod["name"], pod["uid"])], key=lambda i: (i.revision, i.ifname))
        pod["interfaces"] = [
            {
                "network": i.network,
                "interface": i.ifname,
                "ips": list(i.ips),
                "mac": i.mac,
                "container_id": i.container_id,
                "node": i.node,
                "host_interface": i.host_ifname,
            }
            for i in ifaces
        ]
    return pods


def _pod_row(iface: catalog_pb2.PodInterface) -> dict[str, Any]:
    if iface.pod.name:
        pod = f"{iface.pod.namespace}/{iface.pod.name}" if iface.pod.namespace else iface.pod.name
    else:
        pod = iface.container_id[:12]
    return {
        "pod": pod,
        "network": iface.network,
        "interface": iface.ifname,
        "ips": ",".join(iface.ips),
        "mac": iface.mac,
        "node": iface.node,
    }


def _print_table(rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        print("No resources found.")
        return
    columns = [c for c in rows[0] if not isinstance(rows[0][c], dict | list)]
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
