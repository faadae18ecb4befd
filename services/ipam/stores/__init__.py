"""Stores behind one interface: `sqlite:/path/ipam.db` (embedded default) or `etcd:http://host:2379[,http://...]`
(optionally `?prefix=/multinet/ipam/`) for several IPAM replicas. `etcd:https://...`: mutual TLS with the
multinet material (MULTINET_TLS_DIR: its CA, its certificate as the client's; etcd's certificate must name
`multinet`, as multinet's own do)."""

from __future__ import annotations

import ssl

from services.common import tls
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
        urls = endpoints.split(",")
        return EtcdStore(urls, prefix, *_etcd_tls(urls))
    raise FieldError("store", f"{url!r} is not sqlite:/path/to/ipam.db nor etcd:http://host:2379")


def _etcd_tls(urls: list[str]) -> tuple[ssl.SSLContext | None, str]:
    """The TLS context and server name for the endpoints: none for http, the multinet material for https."""
    schemes = {url.partition("://")[0] for url in urls}
    if not schemes <= {"http", "https"} or len(schemes) != 1:
        raise FieldError("store", f"etcd endpoints {','.join(urls)}: all http:// or all https://")
    if schemes == {"http"}:
        return None, ""
    try:
        material = tls.configured()
        if material is None:
            raise FieldError("store", f"etcd over https needs {tls.ENV} (the CA and the client certificate)")
        return tls.client_ssl_context(material), tls.SERVER_NAME
    except (tls.TlsError, ssl.SSLError, OSError) as exc:
        raise FieldError("store", str(exc)) from None
