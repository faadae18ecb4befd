"""The distributed store: etcd v3, so several IPAM replicas serve at once.

Keys under the prefix P (default /multinet/ipam/):
  P i/a/<network>/<version>/<hex address>  → container_id/ifname              one per reserved address
  P i/c/<network>/<range_id>               → cursor ticks
  P o/<network>/<container_id>/<ifname>    → the owner's Holding (JSON)       one per owner
Replicas watch only P i/ (the index: addresses and cursors), not the larger owner records.
A reservation is one transaction: compare create_revision == 0 on the owner key and every address key (and the same
address in the networks an exclusive config must avoid), then put them all plus the cursors. etcd answers only once
the write is committed by a quorum, so an address is never reported before it is durably recorded.

Each replica's AddressBook is loaded by a paged scan and kept in sync by a watch from the scan's revision; a stale
book only costs a CAS conflict and a retry. Cursors are written without compare (a hot key would serialise every
replica); replicas keep the highest value they see, so a cursor only moves forward in memory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Awaitable, Mapping, Sequence
from typing import TypeVar
from urllib.parse import quote, unquote

from services.ipam.book import AddressBook
from services.ipam.errors import StoreUnavailable
from services.ipam.model import Holding, Lease, OwnerKey
from services.ipam.stores.base import Outcome, ReserveResult
from services.ipam.stores.etcd_client import (
    EtcdClient,
    EtcdCompacted,
    EtcdUnavailable,
    Event,
    KeyValue,
    created_at,
    delete,
    get,
    kvs_of,
    put,
)

T = TypeVar("T")
log = logging.getLogger(__name__)
MAX_TXN_OPS = 120  # etcd's default --max-txn-ops is 128


class EtcdStore:
    shared = True  # several replicas write concurrently

    def __init__(
        self,
        endpoints: Sequence[str],
        prefix: str = "/multinet/ipam/",
        tls: ssl.SSLContext | None = None,
        server_name: str = "",
    ) -> None:
        """`tls`, `server_name`: for https endpoints (see EtcdClient)."""
        self._client = EtcdClient(endpoints, tls=tls, server_name=server_name)
        self._prefix = prefix.encode()
        self._book: AddressBook | None = None
        self._watcher: asyncio.Task[None] | None = None

    # keys
    def _addr_key(self, network: str, version: int, address: int) -> bytes:
        return self._prefix + f"i/a/{network}/{version}/{address:0{8 if version == 4 else 32}x}".encode()

    def _owner_key(self, key: OwnerKey) -> bytes:
        container_id, ifname = quote(key.container_id, safe=""), quote(key.ifname, safe="")
        return self._prefix + f"o/{key.network}/{container_id}/{ifname}".encode()

    def _cursor_key(self, network: str, range_id: str) -> bytes:
        return self._prefix + f"i/c/{network}/{range_id}".encode()

    async def start(self, book: AddressBook) -> None:
        self._book = book
        revision = await _guarded(self._load(book))
        self._watcher = asyncio.create_task(self._watch(book, revision + 1), name="ipam-etcd-watch")

    async def _load(self, book: AddressBook) -> int:
        book.clear()
        addresses, revision = await self._client.scan(self._prefix + b"i/a/", keys_only=True)
        for kv in addresses:
            self._apply(book, Event(False, kv))
        cursors, _, _ = await self._client.range(self._prefix + b"i/c/", self._prefix + b"i/c0", revision=revision)
        for kv in cursors:
            self._apply(book, Event(False, kv))
        return revision

    def _apply(self, book: AddressBook, event: Event) -> None:
        try:
            kind, _, rest = event.kv.key[len(self._prefix) + 2 :].decode().partition("/")  # past "i/"
            network, _, rest = rest.partition("/")
            if kind == "a":
                version, _, hexa = rest.partition("/")
                if event.deleted:
                    book.mark_free(network, int(version), int(hexa, 16))
                else:
                    book.mark_taken(network, int(version), int(hexa, 16))
            elif kind == "c" and not event.deleted:
                book.set_cursor(network, rest, int(event.kv.value))
        except ValueError:
            # Not ours (someone wrote under our prefix): skipping it only makes the book a worse hint.
            log.warning("ignoring a malformed ipam key", extra={"key": event.kv.key.decode(errors="replace")})

    async def _watch(self, book: AddressBook, revision: int) -> None:
        """Follow every change from `revision` on; reconnect where it stopped, reload when history is compacted."""
        delay = 0.1
        while True:
            try:
                async for events in self._client.watch(self._prefix + b"i/", revision):
                    for event in events:
                        self._apply(book, event)
                        revision = event.kv.mod_revision + 1
                    delay = 0.1
            except EtcdCompacted:
                log.warning("ipam watch: history compacted, reloading", extra={"revision": revision})
                with contextlib.suppress(EtcdUnavailable):
                    revision = await self._load(book) + 1
            except EtcdUnavailable as exc:
                log.warning("ipam watch interrupted", extra={"error": str(exc), "revision": revision})
            except Exception:
                log.exception("ipam watch failed, reconnecting", extra={"revision": revision})
            await asyncio.sleep(delay)  # back-off before reconnecting, not synchronisation
            delay = min(delay * 2, 2.0)

    async def reserve(self, holding: Holding, cursors: Mapping[str, int], exclusive_of: Sequence[str]) -> ReserveResult:
        network = holding.key.network
        owner_key = self._owner_key(holding.key)
        own = [(network, lease.version, lease.address) for lease in holding.leases]
        # Other networks an exclusive config must avoid, as many as a transaction holds; beyond that the book decides.
        room = max(0, (MAX_TXN_OPS - 1 - len(own)) // max(1, len(own)))
        others = [(n, v, a) for n in list(exclusive_of)[:room] for _, v, a in own]
        guarded = own + others
        compare = [created_at(owner_key, 0)] + [created_at(self._addr_key(*g), 0) for g in guarded]
        owner_value = _encode(holding)
        success = [put(owner_key, owner_value)]
        marker = f"{holding.key.container_id}/{holding.key.ifname}".encode()  # for humans reading etcd
        for lease in holding.leases:
            success.append(put(self._addr_key(network, lease.version, lease.address), marker))
        success += [put(self._cursor_key(network, r), str(t).encode()) for r, t in cursors.items()]
        failure = [get(owner_key)] + [get(self._addr_key(*g), count_only=True) for g in guarded]
        succeeded, responses = await _guarded(self._client.txn(compare, success, failure))
        if succeeded:
            revision = int(responses[0]["response_put"]["header"]["revision"])
            saved = Holding(holding.key, holding.leases, holding.pod_ref, holding.created_ms, revision)
            return ReserveResult(Outcome.RESERVED, holding=saved)
        owners = kvs_of(responses[0]["response_range"])
        if owners:
            return ReserveResult(Outcome.OWNER_EXISTS, holding=_decode(holding.key, owners[0]))
        counts = [int(r["response_range"].get("count", 0)) for r in responses[1:]]
        taken = tuple(g for g, count in zip(guarded, counts, strict=True) if count)
        return ReserveResult(Outcome.ADDRESS_TAKEN, taken=taken)

    async def holding(self, key: OwnerKey) -> Holding | None:
        kvs, _, _ = await _guarded(self._client.range(self._owner_key(key)))
        return _decode(key, kvs[0]) if kvs else None

    async def holdings(self, network: str | None) -> list[Holding]:
        prefix = self._prefix + (f"o/{network}/" if network is not None else "o/").encode()
        kvs, _ = await _guarded(self._client.scan(prefix))
        return [_decode(self._owner_of(kv.key), kv) for kv in kvs]

    def _owner_of(self, key: bytes) -> OwnerKey:
        network, container_id, ifname = key[len(self._prefix) + 2 :].decode().split("/")
        return OwnerKey(network, unquote(container_id), unquote(ifname))

    async def release(self, key: OwnerKey, generation: int | None = None) -> Holding | None:
        """Delete the owner and its addresses in one transaction, guarded by the owner's create revision (the
        generation): address keys only ever change together with their owner key, so they are exactly its leases."""
        found = await self.holding(key)
        if found is None or (generation is not None and found.generation != generation):
            return None
        owner_key = self._owner_key(key)
        ops = [delete(owner_key)]
        ops += [delete(self._addr_key(key.network, lease.version, lease.address)) for lease in found.leases]
        succeeded, _ = await _guarded(self._client.txn([created_at(owner_key, found.generation)], ops, []))
        return found if succeeded else None

    async def aclose(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        await self._client.close()


async def _guarded(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except EtcdUnavailable as exc:
        raise StoreUnavailable(str(exc)) from exc


def _encode(h: Holding) -> bytes:
    leases = [[x.version, str(x.address), x.prefixlen, x.gateway, x.range_index] for x in h.leases]
    return json.dumps({"pod_ref": h.pod_ref, "created_ms": h.created_ms, "leases": leases}).encode()


def _decode(key: OwnerKey, kv: KeyValue) -> Holding:
    data = json.loads(kv.value)
    leases = tuple(Lease(v, int(a), p, g, i) for v, a, p, g, i in data["leases"])
    return Holding(key, leases, data.get("pod_ref", ""), int(data.get("created_ms", 0)), kv.create_revision)
