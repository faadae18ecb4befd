"""The catalog's durable state: networks, attachment definitions, pod interfaces and nodes, plus the event log.

Every change gets the next revision and an event, written in the same SQLite transaction as the object, so the
event log is exactly the history of the objects: a watcher resuming after revision R misses nothing and sees
nothing twice. All objects are also held in memory (one writer: this process) so reads cost no I/O."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message
from multinet.v1 import catalog_pb2, events_pb2

from .status import network_status_json

EventType = events_pb2.EventType
MEMORY_EVENTS = 20_000  # recent events served from memory
KEPT_EVENTS = 200_000  # older ones are trimmed from the database

InterfaceKey = tuple[str, str, str]  # network, container_id, ifname
AttachmentKey = tuple[str, str]  # namespace, name

_SCHEMA = """
create table if not exists meta (key text primary key, value integer not null);
create table if not exists networks (name text primary key, data blob not null);
create table if not exists attachments (namespace text, name text, data blob not null, primary key (namespace, name));
create table if not exists interfaces (network text, container_id text, ifname text, node text, data blob not null,
  primary key (network, container_id, ifname));
create table if not exists nodes (name text primary key, data blob not null);
create table if not exists events (revision integer primary key, data blob not null);
create table if not exists pools (network text primary key, data blob not null);
"""


@dataclass(frozen=True, slots=True)
class Change:
    """One object written (obj set) or deleted (obj None), and the event that records it."""

    table: str
    key: tuple[str, ...]
    obj: Message | None
    event_type: int  # EVENT_TYPE_UNSPECIFIED: bookkeeping only, no revision and no event (see commit)
    previous: Message | None = None  # on deletes: the object as it was, carried by the event


class CatalogStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("pragma journal_mode=wal")
        self._db.execute("pragma synchronous=full")
        self._db.executescript(_SCHEMA)
        self.networks: dict[str, catalog_pb2.Network] = {}
        self.attachments: dict[AttachmentKey, catalog_pb2.AttachmentDefinition] = {}
        self.interfaces: dict[InterfaceKey, catalog_pb2.PodInterface] = {}
        self.nodes: dict[str, catalog_pb2.Node] = {}
        self.pools: dict[str, events_pb2.PoolPressure] = {}  # last pressure level reported per network
        self.revision = 0
        self._recent: deque[events_pb2.Event] = deque(maxlen=MEMORY_EVENTS)
        self._bumped = asyncio.Event()
        self._load()

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------------------------------------ loading
    def _load(self) -> None:
        row = self._db.execute("select value from meta where key = 'revision'").fetchone()
        self.revision = row[0] if row else 0
        for (data,) in self._db.execute("select data from networks"):
            net = catalog_pb2.Network.FromString(data)
            self.networks[net.name] = net
        for (data,) in self._db.execute("select data from attachments"):
            att = catalog_pb2.AttachmentDefinition.FromString(data)
            self.attachments[(att.namespace, att.name)] = att
        for (data,) in self._db.execute("select data from interfaces"):
            iface = catalog_pb2.PodInterface.FromString(data)
            self.interfaces[(iface.network, iface.container_id, iface.ifname)] = iface
        for (data,) in self._db.execute("select data from nodes"):
            node = catalog_pb2.Node.FromString(data)
            self.nodes[node.name] = node
        for (data,) in self._db.execute("select data from pools"):
            pool = events_pb2.PoolPressure.FromString(data)
            self.pools[pool.network] = pool
        rows = self._db.execute("select data from events order by revision desc limit ?", (MEMORY_EVENTS,))
        self._recent.extend(reversed([events_pb2.Event.FromString(d) for (d,) in rows]))

    # ------------------------------------------------------------------------------------------------ writing
    def commit(self, changes: Sequence[Change]) -> int:
        """Write all changes atomically; returns the new revision. Each change gets the next revision and an
        event, except bookkeeping ones (event type unspecified: a deleted network's pool level)."""
        if not changes:
            return self.revision
        revision = self.revision
        events = []
        with self._transaction():
            for change in changes:
                if change.event_type == events_pb2.EVENT_TYPE_UNSPECIFIED:
                    self._write_row(change)
                    continue
                revision += 1
                if change.obj is not None:
                    _set_revision(change.obj, revision)
                self._write_row(change)
                event = _event(change, revision)
                events.append(event)
                self._db.execute("insert into events values (?, ?)", (revision, event.SerializeToString()))
            self._db.execute("insert or replace into meta values ('revision', ?)", (revision,))
            if events and revision % 1000 < len(events):
                self._db.execute("delete from events where revision <= ?", (revision - KEPT_EVENTS,))
        for change in changes:
            self._apply_memory(change)
        self._recent.extend(events)
        self.revision = revision
        self._bumped.set()
        self._bumped = asyncio.Event()
        return revision

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("begin immediate")
        try:
            yield
        except BaseException:
            self._db.execute("rollback")
            raise
        self._db.execute("commit")

    def _write_row(self, change: Change) -> None:
        columns = _KEY_COLUMNS[change.table]
        where = " and ".join(f"{c} = ?" for c in columns)
        if change.obj is None:
            self._db.execute(f"delete from {change.table} where {where}", change.key)
            return
        extra: tuple[str, ...] = ()
        if change.table == "interfaces":
            assert isinstance(change.obj, catalog_pb2.PodInterface)
            extra = (change.obj.node,)
        values = (*change.key, *extra, change.obj.SerializeToString())
        marks = ", ".join("?" * len(values))
        self._db.execute(f"insert or replace into {change.table} values ({marks})", values)

    def _apply_memory(self, change: Change) -> None:
        table: dict[object, Message] = getattr(self, change.table)
        key: object = change.key[0] if len(change.key) == 1 else change.key
        if change.obj is None:
            table.pop(key, None)
        else:
            table[key] = change.obj

    # ------------------------------------------------------------------------------------------------ watching
    async def wait_beyond(self, revision: int) -> None:
        """Return once the catalog's revision is greater than `revision`."""
        while self.revision <= revision:
            await self._bumped.wait()

    @property
    def oldest_event_revision(self) -> int:
        row = self._db.execute("select min(revision) from events").fetchone()
        return int(row[0]) if row and row[0] is not None else self.revision + 1

    def events_after(self, revision: int, limit: int = 1000) -> list[events_pb2.Event]:
        """Events with revision > `revision`, oldest first, at most `limit`."""
        if self._recent and self._recent[0].revision <= revision + 1:
            out = []
            for event in self._recent:
                if event.revision > revision:
                    out.append(event)
                    if len(out) >= limit:
                        break
            return out
        rows = self._db.execute(
            "select data from events where revision > ? order by revision limit ?", (revision, limit)
        )
        return [events_pb2.Event.FromString(d) for (d,) in rows]


_KEY_COLUMNS = {
    "networks": ("name",),
    "attachments": ("namespace", "name"),
    "interfaces": ("network", "container_id", "ifname"),
    "nodes": ("name",),
    "pools": ("network",),
}


def _set_revision(obj: Message, revision: int) -> None:
    obj.revision = revision  # type: ignore[attr-defined]  # every catalog object has a revision field


def _event(change: Change, revision: int) -> events_pb2.Event:
    event = events_pb2.Event(revision=revision, type=change.event_type, unix_ms=int(time.time() * 1000))  # type: ignore[arg-type]
    obj = change.obj if change.obj is not None else change.previous
    if isinstance(obj, catalog_pb2.Network) or (obj is None and change.table == "networks"):
        event.network.CopyFrom(obj or catalog_pb2.Network(name=change.key[0]))
    elif isinstance(obj, catalog_pb2.AttachmentDefinition) or (obj is None and change.table == "attachments"):
        event.attachment.CopyFrom(obj or catalog_pb2.AttachmentDefinition(namespace=change.key[0], name=change.key[1]))
    elif isinstance(obj, catalog_pb2.Node) or (obj is None and change.table == "nodes"):
        event.node.CopyFrom(obj or catalog_pb2.Node(name=change.key[0]))
    elif isinstance(obj, events_pb2.PoolPressure):
        event.pool.CopyFrom(obj)
    elif change.table == "interfaces":
        iface = obj if isinstance(obj, catalog_pb2.PodInterface) else catalog_pb2.PodInterface()
        if obj is None:
            iface.network, iface.container_id, iface.ifname = change.key
        event.interface.CopyFrom(iface)
        event.network_status_json = network_status_json(iface)
    return event
