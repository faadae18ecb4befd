"""The IPAM service: one address domain per network, whereabouts-compatible configuration.

Embedding (the all-in-one process):

    ipam = await build_ipam("sqlite:/var/lib/multinet/ipam.db", catalog_target="unix:/run/multinet/netmgr.sock")
    server = await rpc.start_server([ipam.register, ...], [...])
    ...
    await server.stop(grace)
    await ipam.aclose()
"""

from __future__ import annotations

from services.ipam.core import IpamCore
from services.ipam.reconcile import Reconciler
from services.ipam.servicer import IpamServicer
from services.ipam.stores import open_store

__all__ = ["IpamCore", "IpamServicer", "build_ipam"]

DEFAULT_RECONCILE_INTERVAL = 60.0
DEFAULT_GRACE_PERIOD = 120.0


async def build_ipam(
    store_url: str,
    catalog_target: str | None = None,
    *,
    reconcile_interval: float = DEFAULT_RECONCILE_INTERVAL,
    grace_period: float = DEFAULT_GRACE_PERIOD,
) -> IpamServicer:
    """Open the store, load the in-memory index, start reconciling against the catalog when a target is given.
    Raises services.common.validate.FieldError for a bad store URL and services.ipam.errors.StoreUnavailable when
    the store cannot be opened. The caller registers the servicer (`register(server)`) and calls `aclose()`."""
    core = IpamCore(open_store(store_url))
    await core.start()
    reconciler = None
    if catalog_target:
        reconciler = Reconciler(core, catalog_target, reconcile_interval, grace_period)
        reconciler.start()
    return IpamServicer(core, reconciler)
