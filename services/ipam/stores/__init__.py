"""Stores behind one interface: `sqlite:/path/ipam.db` (embedded default) or `etcd:http://host:2379[,http://...]`
(optionally `?prefix=/multinet/ipam/`) for several IPAM replicas."""

from __future__ import annotations

from services.common.validate import FieldError
from services.ipam.stores.base import Outcome, ReserveResult, Store

__all__ = ["Outcome", "ReserveResult", "Store", "open_store"]


def open_store(url: str) -> Store:
    """A store for a URL; nothing is opened before `start`."""
    scheme, _, rest = url.partition(":")
    if scheme == "sqlite" and rest:
        from services.ipam.stores.sqlite import SqliteStore

        return SqliteStore(rest.removeprefix("//"))
    if scheme == "etcd" and rest:
        from services.ipam.stores.etcd import EtcdStore

        endpoints, _, query = rest.partition("?")
        prefix = "/multinet/ipam/"
        for item in filter(None, query.split("&")):
            name, _, value = item.partition("=")
            if name != "prefix" or not value.startswith("/"):
                raise FieldError("store", f"unknown etcd option {item!r} (allowed: prefix=/path/)")
            prefix = value if value.endswith("/") else value + "/"
        return EtcdStore(endpoints.split(","), prefix)
    raise FieldError("store", f"{url!r} is not sqlite:/path/to/ipam.db nor etcd:http://host:2379")
