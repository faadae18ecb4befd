"""gRPC plumbing shared by every service: servers on root-only unix sockets (or TCP), client channels, and the
mapping of service errors to gRPC status codes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

import grpc

from . import local, sockets, tls

log = logging.getLogger("multinet.rpc")

Registrar = Callable[[grpc.aio.Server], None]
S = TypeVar("S")
Context = grpc.aio.ServicerContext[Any, Any]  # what every servicer method receives

# Keep-alive and sizes suited to long-lived desired-state streams and big snapshots.
CHANNEL_OPTIONS: Sequence[tuple[str, int]] = (
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
    # a restarted service is found again within a second (gRPC's default backoff grows to 120 s)
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)


class ServiceError(Exception):
    """An error a servicer reports to its caller with a status code and a message that says what to fix."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.NOT_FOUND, message)


async def abort(context: Context, error: ServiceError) -> NoReturn:
    await context.abort(error.code, error.message)
    raise AssertionError("unreachable: abort raises")


def _prepare_unix(address: str) -> Path | None:
    if not address.startswith("unix:"):
        return None
    path = Path(address.removeprefix("unix:"))
    sockets.claim(path)
    return path


async def start_server(registrars: Sequence[Registrar], addresses: Sequence[str]) -> grpc.aio.Server:
    """Start one gRPC server hosting the given services on the given addresses ("unix:/path" or "host:port").
    Unix sockets are made root-only (0600); TCP listeners require mutual TLS when it is configured (see
    services.common.tls), else they are plaintext and the log says so."""
    server = grpc.aio.server(options=CHANNEL_OPTIONS)
    for register in registrars:
        register(server)
    paths = []
    material = tls.configured() if any(not a.startswith("unix:") for a in addresses) else None
    tls.check_serving(material, addresses)
    for address in addresses:
        path = _prepare_unix(address)
        if path is None and material is not None:
            bound = server.add_secure_port(address, tls.server_credentials(material))
        else:
            bound = server.add_insecure_port(address)
            if path is None:
                log.warning("listening on %s without TLS: set %s for mutual TLS", address, tls.ENV)
        if bound == 0 and path is None:
            raise OSError(f"cannot listen on {address}")
        if path is not None:
            paths.append(path)
    await server.start()
    for path in paths:
        sockets.restrict(path)
    return server


def channel(target: str) -> grpc.aio.Channel:
    """A client channel to "unix:/path" or "host:port" (mutual TLS on TCP when it is configured: the server must
    present a certificate for tls.SERVER_NAME from the configured CA)."""
    material = None if target.startswith("unix:") else tls.configured()
    if material is None:
        return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
    options = (*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", tls.SERVER_NAME))
    return grpc.aio.secure_channel(target, tls.channel_credentials(material), options=options)


class Channels:
    """The channels a service opened (closed together), and stubs that go in-process when they can."""

    def __init__(self) -> None:
        self._open: dict[str, grpc.aio.Channel] = {}

    def get(self, target: str) -> grpc.aio.Channel:
        if target not in self._open:
            self._open[target] = channel(target)
        return self._open[target]

    def stub(self, factory: Callable[[grpc.aio.Channel], S], target: str) -> S:
        """A stub for `target`; each call goes in-process when the target's servicer is registered in this
        process at that moment (see services.common.local), else over gRPC."""
        return cast(S, _Routed(lambda: factory(self.get(target)), target))

    async def close(self) -> None:
        for ch in self._open.values():
            await ch.close(None)
        self._open.clear()


def status_of(exc: BaseException) -> grpc.StatusCode | None:
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code()
    return None


def details_of(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.details() or str(exc.code())
    return str(exc)


class _Routed:
    def __init__(self, remote: Callable[[], object], target: str) -> None:
        self._make_remote = remote
        self._remote: object | None = None
        self._target = target

    def __getattr__(self, name: str) -> Any:
        servicers = local.lookup(self._target)
        if servicers is not None:
            return getattr(local.LocalStub(servicers), name)
        if self._remote is None:
            self._remote = self._make_remote()
        return getattr(self._remote, name)
