"""In-process calls between services that share a process (the embedded all-in-one).

A client asks `rpc.stub(Factory, target)`; when a servicer for `target` lives in this process it gets a stub
that calls the servicer's coroutine directly — same messages, same servicer code, same status codes (failures
surface as grpc.aio.AioRpcError) — without HTTP/2 framing and serialization. Otherwise it gets a real gRPC
stub. Services stay unaware of each other: they only know a target string."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn

import grpc

_servicers: dict[str, list[object]] = {}


def register(target: str, servicer: object) -> None:
    _servicers.setdefault(target, []).append(servicer)


def unregister(target: str, servicer: object) -> None:
    held = _servicers.get(target, [])
    if servicer in held:
        held.remove(servicer)
    if not held:
        _servicers.pop(target, None)


def lookup(target: str) -> list[object] | None:
    return _servicers.get(target)


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details, None)


class LocalContext:
    """The part of grpc.aio.ServicerContext our servicers use."""

    async def send_initial_metadata(self, metadata: object) -> None:
        """In-process streams are connected from the start."""

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: object = None) -> NoReturn:
        raise rpc_error(code, details)


class LocalStub:
    def __init__(self, servicers: list[object]) -> None:
        self._servicers = servicers

    def __getattr__(self, name: str) -> Callable[..., Any]:
        for servicer in self._servicers:
            method = getattr(servicer, name, None)
            if method is not None:
                return _local_method(method)
        raise AttributeError(name)


def _local_method(method: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(method):

        def stream(request: object, timeout: float | None = None, **_: object) -> AsyncIterator[Any]:
            return _guard_stream(method(request, LocalContext()))

        return stream

    async def unary(request: object, timeout: float | None = None, **_: object) -> Any:  # noqa: ASYNC109 - gRPC stub signature
        call = method(request, LocalContext())
        try:
            return await (asyncio.wait_for(call, timeout) if timeout else call)
        except grpc.aio.AioRpcError:
            raise
        except TimeoutError:
            raise rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded") from None
        except Exception as exc:  # what gRPC would report for a servicer bug
            raise rpc_error(grpc.StatusCode.UNKNOWN, f"Unexpected {type(exc).__name__}: {exc}") from exc

    return unary


async def _guard_stream(stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    try:
        async for item in stream:
            yield item
    except grpc.aio.AioRpcError:
        raise
    except Exception as exc:
        raise rpc_error(grpc.StatusCode.UNKNOWN, f"Unexpected {type(exc).__name__}: {exc}") from exc
