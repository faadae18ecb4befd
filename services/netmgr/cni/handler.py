"""CNI commands: ADD and DEL orchestrate IPAM, the node agent and the catalog, with rollback so that a failed
ADD leaves nothing behind (no address held, no interface, no route, no rule, no record)."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import grpc
from multinet.v1 import agent_pb2, catalog_pb2, ipam_pb2
from opentelemetry import trace

from services.common.telemetry import tracer

from .backends import DEADLINE_S, Backends, call
from .config import NetConf
from .env import CniEnv
from .errors import CniFailure, Code
from .ipam_config import IpamConfigs
from .result import add_result
from .routes import GATEWAYS, pod_routes
from .view import CatalogView

log = logging.getLogger("multinet.netmgr.cni")
_tracer = tracer("multinet.netmgr.cni")
GC = grpc.StatusCode


class KeyLocks:
    """One lock per attachment key: ADD and DEL of the same (network, container, ifname) never interleave."""

    def __init__(self) -> None:
        self._locks: defaultdict[tuple[str, ...], asyncio.Lock] = defaultdict(asyncio.Lock)

    @asynccontextmanager
    async def hold(self, key: tuple[str, ...]) -> AsyncIterator[None]:
        lock = self._locks[key]
        async with lock:
            yield
        if not lock.locked() and self._locks.get(key) is lock:
            del self._locks[key]


class CniHandler:
    def __init__(self, backends: Backends, view: CatalogView, node: str) -> None:
        self.backends = backends
        self.view = view
        self.node = node
        self.locks = KeyLocks()
        self.ipam_configs = IpamConfigs()

    def network(self, env: CniEnv, conf: NetConf) -> catalog_pb2.Network:
        if not self.view.in_sync:
            raise CniFailure(Code.TRY_AGAIN_LATER, "multinet is starting and not yet in sync with its catalog")
        net = self.view.network_for(conf.network, conf.name)
        if net is None:
            named = conf.network or f"attachment {conf.name!r}"
            known = ", ".join(sorted(self.view.networks)) or "none"
            raise CniFailure(
                Code.INVALID_CONFIG,
                f"unknown network {named}",
                f"apply a Network (and its NetworkAttachmentDefinition) first; known networks: {known}",
            )
        return net

    # ------------------------------------------------------------------------------------------------ ADD
    async def add(self, env: CniEnv, conf: NetConf) -> dict[str, Any]:
        net = self.network(env, conf)
        ipam_config = self.ipam_configs.get(conf, net)
        span = trace.get_current_span()
        span.set_attributes({"cni.network": net.name, "cni.container_id": env.container_id, "cni.ifname": env.ifname})
        async with self.locks.hold((net.name, env.container_id, env.ifname)):
            owner = ipam_pb2.Owner(container_id=env.container_id, ifname=env.ifname, pod_ref=_pod_ref(env))
            with _tracer.start_as_current_span("ipam.allocate"):
                allocation = await call(
                    "ipam",
                    self.backends.ipam.Allocate(
                        ipam_pb2.AllocateRequest(
                            network=net.name,
                            config=ipam_config,
                            owner=owner,
                            requested_ips=list(conf.requested_ips or env.requested_ips()),
                        ),
                        timeout=DEADLINE_S,
                    ),
                    {
                        GC.RESOURCE_EXHAUSTED: Code.POOL_EXHAUSTED,
                        GC.ALREADY_EXISTS: Code.ADDRESS_UNAVAILABLE,
                        GC.OUT_OF_RANGE: Code.ADDRESS_UNAVAILABLE,
                    },
                )
            iface = self._interface(env, conf, net, ipam_config, allocation)
            try:
                with _tracer.start_as_current_span("agent.attach"):
                    reply = await call(
                        "agent",
                        self.backends.agent.Attach(
                            agent_pb2.AttachRequest(interface=iface, network=net), timeout=DEADLINE_S
                        ),
                        {GC.NOT_FOUND: Code.CONTAINER_UNKNOWN, GC.ALREADY_EXISTS: Code.INTERFACE_EXISTS},
                    )
                iface.host_ifname, iface.mac, iface.mtu = reply.host_ifname, reply.mac, reply.mtu
                with _tracer.start_as_current_span("catalog.record"):
                    await call(
                        "catalog",
                        self.backends.catalog.RecordInterface(
                            catalog_pb2.RecordInterfaceRequest(interface=iface), timeout=DEADLINE_S
                        ),
                    )
            except BaseException as exc:
                await self._rollback(env, net.name, owner, attached=not _interface_exists(exc))
                raise
        log.info(
            "attached",
            extra={"network": net.name, "container_id": env.container_id, "ifname": env.ifname, "ips": list(iface.ips)},
        )
        return add_result(conf.cni_version, iface, conf.dns, conf.prev_result)

    def _interface(
        self,
        env: CniEnv,
        conf: NetConf,
        net: catalog_pb2.Network,
        ipam_config: catalog_pb2.IpamConfig,
        allocation: ipam_pb2.AllocateResponse,
    ) -> catalog_pb2.PodInterface:
        ips = [_host_prefix(a.address) for a in allocation.allocations]
        families = {4 if ":" not in ip else 6 for ip in ips}
        iface = catalog_pb2.PodInterface(
            network=net.name,
            attachment=conf.name,
            container_id=env.container_id,
            ifname=env.ifname,
            netns=env.netns,
            node=self.node,
            ips=ips,
            mac=conf.requested_mac or env.requested_mac(),
            mtu=net.mtu,
            pod=catalog_pb2.PodRef(namespace=env.pod_namespace, name=env.pod_name, uid=env.pod_uid),
            default_route=_wants_default_route(conf),
            gateways=[GATEWAYS[4 if ":" not in ip else 6] for ip in ips],
        )
        iface.routes.extend(pod_routes(net, ipam_config, families, iface.default_route))
        return iface

    async def _rollback(self, env: CniEnv, network: str, owner: ipam_pb2.Owner, *, attached: bool) -> None:
        """Undo a partial ADD. Best effort on each step: one failing must not keep the others from running."""
        steps: list[tuple[str, Awaitable[object]]] = []
        if attached:
            steps.append(
                (
                    "agent",
                    self.backends.agent.Detach(
                        agent_pb2.DetachRequest(
                            network=network, container_id=env.container_id, ifname=env.ifname, netns=env.netns
                        ),
                        timeout=DEADLINE_S,
                    ),
                )
            )
        steps.append(
            (
                "ipam",
                self.backends.ipam.Release(ipam_pb2.ReleaseRequest(network=network, owner=owner), timeout=DEADLINE_S),
            )
        )
        steps.append(
            (
                "catalog",
                self.backends.catalog.ForgetInterface(
                    catalog_pb2.ForgetInterfaceRequest(
                        network=network, container_id=env.container_id, ifname=env.ifname
                    ),
                    timeout=DEADLINE_S,
                ),
            )
        )
        for service, coro in steps:
            try:
                await coro
            except grpc.aio.AioRpcError as exc:
                log.error(
                    "rollback step failed",
                    extra={"service": service, "details": exc.details(), "container_id": env.container_id},
                )

    # ------------------------------------------------------------------------------------------------ DEL
    async def delete(self, env: CniEnv, conf: NetConf) -> None:
        """Idempotent: succeeds when nothing is left, also when the netns or the network are already gone."""
        for network in self._networks_for_delete(env, conf):
            async with self.locks.hold((network, env.container_id, env.ifname)):
                owner = ipam_pb2.Owner(container_id=env.container_id, ifname=env.ifname)
                await call(
                    "agent",
                    self.backends.agent.Detach(
                        agent_pb2.DetachRequest(
                            network=network, container_id=env.container_id, ifname=env.ifname, netns=env.netns
                        ),
                        timeout=DEADLINE_S,
                    ),
                )
                await call(
                    "ipam",
                    self.backends.ipam.Release(
                        ipam_pb2.ReleaseRequest(network=network, owner=owner), timeout=DEADLINE_S
                    ),
                )
                await call(
                    "catalog",
                    self.backends.catalog.ForgetInterface(
                        catalog_pb2.ForgetInterfaceRequest(
                            network=network, container_id=env.container_id, ifname=env.ifname
                        ),
                        timeout=DEADLINE_S,
                    ),
                )
        log.info("detached", extra={"container_id": env.container_id, "ifname": env.ifname})

    def _networks_for_delete(self, env: CniEnv, conf: NetConf) -> list[str]:
        if not self.view.in_sync:
            raise CniFailure(Code.TRY_AGAIN_LATER, "multinet is starting and not yet in sync with its catalog")
        net = self.view.network_for(conf.network, conf.name)
        names = {net.name} if net is not None else set()
        if conf.network:
            names.add(conf.network)  # the network may be gone from the catalog; its leftovers are not
        names |= {k[0] for k in self.view.interfaces if k[1:] == (env.container_id, env.ifname)}
        return sorted(names)


def _interface_exists(exc: BaseException) -> bool:
    return isinstance(exc, CniFailure) and exc.code == Code.INTERFACE_EXISTS


def _host_prefix(address: str) -> str:
    ip = address.split("/", maxsplit=1)[0]
    return f"{ip}/128" if ":" in ip else f"{ip}/32"


def _pod_ref(env: CniEnv) -> str:
    return f"{env.pod_namespace}/{env.pod_name}" if env.pod_name else ""


def _wants_default_route(conf: NetConf) -> bool:
    for source in (conf.raw, conf.raw.get("runtimeConfig") or {}, (conf.raw.get("args") or {}).get("cni") or {}):
        if isinstance(source, dict):
            value = source.get("default_route", source.get("default-route"))
            if value:
                return True
    return False
