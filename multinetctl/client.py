"""How multinetctl reaches an instance: its netmgr socket (or --server TARGET)."""

from __future__ import annotations

import grpc

from services.common import rpc
from services.common.paths import InstancePaths, unix_target


def netmgr_target(paths: InstancePaths, server: str | None) -> str:
    return server or unix_target(paths.socket("netmgr"))


def open_channel(target: str) -> grpc.aio.Channel:
    return rpc.channel(target)


def explain(exc: grpc.aio.AioRpcError, target: str) -> str:
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        return f"cannot reach multinet at {target}: is `multinetctl up` running (same --state-dir)?"
    return exc.details() or exc.code().name
