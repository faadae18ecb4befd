"""A small client of etcd v3's JSON gateway (HTTP): range, txn and watch, keys and values base64-encoded.

The gateway omits default values (`succeeded: false`, event `type: PUT`, `more: false`), so absent means default.
Several endpoints may be given: a connection failure moves to the next one."""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp


class EtcdUnavailable(Exception):
    """No endpoint answered, or etcd refused the request."""


class EtcdCompacted(Exception):
    """A watch asked for history that etcd has compacted: reload everything."""


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Event:
    deleted: bool
    kv: KeyValue


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def prefix_end(prefix: bytes) -> bytes:
    """The range end that covers every key starting with `prefix`."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


def put(key: bytes, value: bytes) -> dict[str, Any]:
    return {"request_put": {"key": b64(key), "value": b64(value)}}


def get(key: bytes, *, count_only: bool = False) -> dict[str, Any]:
    return {"request_range": {"key": b64(key), "count_only": count_only}}


def delete(key: bytes) -> dict[str, Any]:
    return {"request_delete_range": {"key": b64(key)}}


def created_at(key: bytes, revision: int) -> dict[str, Any]:
    """Compare: the key was created at `revision` (0: the key does not exist)."""
    return {"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": str(revision)}


def kvs_of(response: dict[str, Any]) -> list[KeyValue]:
    return [_kv(item) for item in response.get("kvs", [])]


def _kv(item: dict[str, Any]) -> KeyValue:
    return KeyValue(
        base64.b64decode(item["key"]),
        base64.b64decode(item.get("value", "")),
        int(item.get("create_revision", 0)),
        int(item.get("mod_revision", 0)),
    )


class EtcdClient:
    def __init__(
        self, endpoints: Sequence[str], timeout: float = 5.0, tls: ssl.SSLContext | None = None, server_name: str = ""
    ) -> None:
        """`tls`: for https endpoints, the context (trust, client certificate); `server_name`: the name the
        endpoints' certificates must carry (instead of the address dialled)."""
        self._endpoints = [e.rstrip("/") for e in endpoints]
        self._current = 0
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._tls = tls
        self._server_name = server_name or None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # One pooled keep-alive session: a new TCP connection per request would cost more than the request.
            connector = aiohttp.TCPConnector(limit=64, ssl=self._tls or True)  # True: the system's defaults
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        errors = []
        for _ in self._endpoints:
            endpoint = self._endpoints[self._current]
            try:
                async with self.session.post(
                    endpoint + path, data=json.dumps(body), timeout=self._timeout, server_hostname=self._server_name
                ) as resp:
                    answer: dict[str, Any] = await resp.json(content_type=None)
                    if resp.status != 200:
                        raise EtcdUnavailable(f"etcd {endpoint}{path}: {answer.get('message') or answer}")
                    return answer
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                errors.append(f"{endpoint}: {_reason(exc)}")
                self._current = (self._current + 1) % len(self._endpoints)
        raise EtcdUnavailable("etcd unreachable: " + "; ".join(errors))

    async def range(
        self, key: bytes, end: bytes | None = None, *, revision: int = 0, limit: int = 0, keys_only: bool = False
    ) -> tuple[list[KeyValue], bool, int]:
        """(kvs sorted by key, more pages exist, revision read at)."""
        body: dict[str, Any] = {"key": b64(key), "limit": limit, "keys_only": keys_only, "revision": revision}
        if end is not None:
            body["range_end"] = b64(end)
        answer = await self.post("/v3/kv/range", body)
        return kvs_of(answer), bool(answer.get("more")), int(answer["header"]["revision"])

    async def scan(self, prefix: bytes, *, keys_only: bool = False, page: int = 5000) -> tuple[list[KeyValue], int]:
        """Every key under a prefix, page by page, all read at one revision."""
        found, revision, start = [], 0, prefix
        while True:
            kvs, more, revision = await self.range(
                start, prefix_end(prefix), revision=revision, limit=page, keys_only=keys_only
            )
            found.extend(kvs)
            if not more or not kvs:
                return found, revision
            start = kvs[-1].key + b"\0"

    async def txn(
        self, compare: list[dict[str, Any]], success: list[dict[str, Any]], failure: list[dict[str, Any]]
    ) -> tuple[bool, list[dict[str, Any]]]:
        """(succeeded, the responses of the branch taken)."""
        answer = await self.post("/v3/kv/txn", {"compare": compare, "success": success, "failure": failure})
        return bool(answer.get("succeeded")), list(answer.get("responses", []))

    async def watch(self, prefix: bytes, start_revision: int) -> AsyncIterator[list[Event]]:
        """Batches of events under a prefix from a revision on, until the connection ends."""
        body = {"create_request": {"key": b64(prefix), "range_end": b64(prefix_end(prefix)),
                                   "start_revision": str(start_revision)}}  # fmt: skip
        endpoint = self._endpoints[self._current]
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
        try:
            async with self.session.post(
                endpoint + "/v3/watch", data=json.dumps(body), timeout=timeout, server_hostname=self._server_name
            ) as resp:
                buffer = b""
                # Messages are newline-delimited JSON, possibly larger than aiohttp's line limit: split by hand.
                async for chunk in resp.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in filter(None, lines):
                        events = _watch_events(json.loads(line))
                        if events:
                            yield events
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._current = (self._current + 1) % len(self._endpoints)
            raise EtcdUnavailable(f"etcd watch {endpoint}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    """What went wrong, readable: a refused TLS handshake says so (a configuration error, not an outage)."""
    if isinstance(exc, aiohttp.ClientSSLError):
        cause = getattr(exc, "os_error", None) or exc
        return f"TLS refused: {getattr(cause, 'verify_message', '') or cause}"
    return f"{type(exc).__name__}: {exc}"


def _watch_events(message: dict[str, Any]) -> list[Event]:
    if "error" in message:
        raise EtcdUnavailable(f"etcd watch: {message['error']}")
    result = message.get("result", {})
    if result.get("compact_revision") and result.get("canceled"):
        raise EtcdCompacted(f"history before revision {result['compact_revision']} is compacted")
    if result.get("canceled"):
        raise EtcdUnavailable(f"etcd watch canceled: {result.get('cancel_reason', '')}")
    return [Event(item.get("type") == "DELETE", _kv(item["kv"])) for item in result.get("events", [])]
