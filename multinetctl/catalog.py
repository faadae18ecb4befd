"""`apply` and `delete`: catalog changes through netmgr's gRPC API."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import grpc
from multinet.v1 import catalog_pb2, catalog_pb2_grpc

from services.common.paths import InstancePaths

from .client import explain, netmgr_target, open_channel
from .objects import ObjectShapeError, load_documents, to_apply_request


def apply_or_delete(args: argparse.Namespace) -> int:
    target = netmgr_target(InstancePaths.resolve(args.state_dir), args.server)
    try:
        if args.command == "apply":
            source = "<stdin>" if args.filename == "-" else args.filename
            text = sys.stdin.read() if args.filename == "-" else Path(args.filename).read_text()
            request = to_apply_request(load_documents(text, source), source)
            request.dry_run = args.dry_run
            return asyncio.run(_apply(target, request))
        return asyncio.run(_delete(target, args.kind, args.names))
    except (ObjectShapeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


async def _apply(target: str, request: catalog_pb2.ApplyRequest) -> int:
    async with open_channel(target) as channel:
        try:
            reply = await catalog_pb2_grpc.CatalogStub(channel).Apply(request, timeout=30)
        except grpc.aio.AioRpcError as exc:
            print(f"error: {explain(exc, target)}", file=sys.stderr)
            return 1
    suffix = " (dry run)" if request.dry_run else ""
    for label in reply.created:
        print(f"{label} created{suffix}")
    for label in reply.updated:
        print(f"{label} configured{suffix}")
    for label in reply.unchanged:
        print(f"{label} unchanged")
    return 0


async def _delete(target: str, kind: str, names: list[str]) -> int:
    request = catalog_pb2.DeleteRequest()
    (request.networks if kind == "network" else request.attachments).extend(names)
    async with open_channel(target) as channel:
        try:
            reply = await catalog_pb2_grpc.CatalogStub(channel).Delete(request, timeout=30)
        except grpc.aio.AioRpcError as exc:
            print(f"error: {explain(exc, target)}", file=sys.stderr)
            return 1
    for label in reply.deleted:
        print(f"{label} deleted")
    deleted = {label.split("/", 1)[1] for label in reply.deleted}  # "network/blue", "attachment/ns/name"
    wanted = {name if kind == "network" or "/" in name else f"default/{name}" for name in names}
    missing = wanted - deleted
    for name in sorted(missing):
        print(f"error: {kind} {name!r} not found", file=sys.stderr)
    return 1 if missing else 0
