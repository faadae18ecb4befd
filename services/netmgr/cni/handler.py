"""CNI commands: ADD and DEL orchestrate IPAM, the node agent and the catalog, with rollback so that a failed
ADD leaves nothing behind (no address held, no interface, no route, no rule, no record)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from typing import Any

import grpc
from multinet.v1 import agent_pb2, catalog_pb2, ipam_pb2
from opentelemetry import trace

from services.common.locks import KeyLocks
from services.common.telemetry import tracer

from .backends import DEADLINE_S, Backends, call
from .config import NetConf
from .env import CniEnv
from .errors import CniFailure, Code
from .interface import build_interface, owner_of
from .ipam_config import IpamConfigs
from .pools import PoolReporter
from .result import add_result
from .view import CatalogView, Resolved

log = logging.getLogger("multinet.netmgr.cni")
_tracer = tracer("multinet.netmgr.cni")
GC = grpc.StatusCode


class CniHandler:
    def __init__(self, backends: Backends, view: CatalogView, node: str) -> None:
        self.backends = backends
        self.view = view
        self.node = node
        self.locks: KeyLocks[tuple[str, ...]] = KeyLocks()
        self.ipam_configs = IpamConfigs()
        self.pools = PoolReporter(backends)

    def require_sync(self) -> None:
        if not self.view.in_sync:
            raise CniFailure(
                Code.TRY_AGAIN_LATER,
                "multinet is starting and not yet in sync with its catalog, try again later",
                f"catalog: {self.view.last_error}",
            )

    def resolve(self, env: CniEnv, conf: NetConf) -> Resolved:
        self.require_sync()
        resolved = self.view.resolve(conf.network, conf.name, env.pod_namespace)
        if resolved is None:
            named = f"network {conf.network!r}" if conf.network else f"attachment {conf.name!r}"
            known = ", ".join(sorted(self.view.networks)) or "none"
            raise CniFailure(
                Code.INVALID_CONFIG,
                f"unknown {named}",
                f"apply the Network and its NetworkAttachmentDefinition first; known networks: {known}",
            )
        return resolved

    def network(self, env: CniEnv, conf: NetConf) -> catalog_pb2.Network:
        return self.resolve(env, conf).network

    # ------------------------------------------------------------------------------------------------ ADD
    async def add(self, env: CniEnv, conf: NetConf) -> dict[str, Any]:
        resolved = self.resolve(env, conf)
        if not self.view.connected:  # the record could not be written: fail before reserving anything
            raise CniFailure(
                Code.TRY_AGAIN_LATER, "multinet cannot reach its catalog right now", f"catalog: {self.view.last_error}"
            )
        net = resolved.network
        ipam_config = self.ipam_configs.get(conf, net)
        span = trace.get_current_span()
        span.set_attributes({"cni.network": net.name, "cni.container_id": env.container_id, "cni.ifname": env.ifname})
        async with self.locks.hold((net.name, env.container_id, env.ifname)):
            try:
                iface = await self._add(env, conf, resolved, ipam_config)
            finally:
                self.pools.poke(net.name, ipam_config)  # measured once this call is over, whatever its outcome
        log.info(
            "attached",
            extra={"network": net.name, "container_id": env.container_id, "ifname": env.ifname, "ips": list(iface.ips)},
        )
        return add_result(conf.cni_version, iface, conf.prev_result)

    async def _add(
        self, env: CniEnv, conf: NetConf, resolved: Resolved, ipam_config: catalog_pb2.IpamConfig
    ) -> catalog_pb2.PodInterface:
        """IPAM allocate, agent attach, catalog record; any failure after the allocation rolls everything back."""
        net = resolved.network
        owner = owner_of(env)
        with _tracer.start_as_current_span("ipam.allocate"):
            allocation = await call(
                "ipam",
                self.backends.ipam.Allocate(
                    ipam_pb2.AllocateRequest(
                        network=net.name,
                        config=ipam_config,
                        owner=owner,
                        requested_ips=list(conf.requests.ips or env.requested_ips()),
                    ),
                    timeout=DEADLINE_S,
                ),
                {
                    GC.RESOURCE_EXHAUSTED: Code.POOL_EXHAUSTED,
                    GC.ALREADY_EXISTS: Code.ADDRESS_UNAVAILABLE,
                    GC.OUT_OF_RANGE: Code.ADDRESS_UNAVAILABLE,
                },
            )
        try:
            iface = build_interface(env, conf, resolved, ipam_config, allocation, self.node)
            with _tracer.start_as_current_span("agent.attach"):
                reply = await call(
                    "agent",
                    self.backends.agent.Attach(
                        agent_pb2.AttachRequest(interface=iface, network=net), timeout=DEADLINE_S
                    ),
                    {GC.NOT_FOUND: Code.CONTAINER_UNKNOWN, GC.ALREADY_EXISTS: Code.INTERFACE_EXISTS},
                )
            if iface.mac and reply.mac.lower() != iface.mac:
                raise CniFailure(
                    Code.DATAPLANE_FAILURE, f"the node agent set MAC {reply.mac} instead of the requested {iface.mac}"
                )
            iface.host_ifname, iface.mac, iface.mtu = reply.host_ifname, reply.mac, reply.mtu
            iface.host_mac = reply.host_mac
            with _tracer.start_as_current_span("catalog.record"):
                await call(
                    "catalog",
                    self.backends.catalog.RecordInterface(
                        catalog_pb2.RecordInterfaceRequest(interface=iface), timeout=DEADLINE_S
                    ),
                )
        except BaseException as exc:
            await self._rollback(env, net.name, owner, repeat=allocation.existing, attached=not _interface_exists(exc))
            raise
        return iface

    async def _rollback(
        self, env: CniEnv, network: str, owner: ipam_pb2.Owner, *, repeat: bool, attached: bool
    ) -> None:
        """Undo what this ADD made. `repeat`: the addresses were already held, by an earlier ADD of the same
        attachment: the interface, the addresses and the record are that one's (a live pod), and only a DEL
        takes them away. Best effort on each step: one failing must not keep the others from running."""
        if repeat:
            log.warning("repeated ADD failed; the earlier attachment is left as it was",
                        extra={"network": network, "container_id": env.container_id, "ifname": env.ifname})  # fmt: skip
            return
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
    async def delete(self, env: CniEnv, conf: NetConf, networks: Sequence[str] | None = None) -> None:
        """Idempotent: succeeds when nothing is left, also when the netns or the network are already gone.
        `networks`: exactly these (GC); by default the config's network and any other holding this key."""
        for network in networks if networks is not None else self._networks_for_delete(env, conf):
            async with self.locks.hold((network, env.container_id, env.ifname)):
                owner = owner_of(env)
                await self._detach_on_agent(env, network)
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
                self.pools.poke(network)
        log.info("detached", extra={"container_id": env.container_id, "ifname": env.ifname})

    async def _detach_on_agent(self, env: CniEnv, network: str) -> None:
        """A failing or unreachable agent does not fail DEL: once the record is gone, the agent removes the port at
        its next convergence (level-triggered), so the address and the record must not stay held for a pod that is
        gone — a DEL that failed forever would hold them forever."""
        request = agent_pb2.DetachRequest(
            network=network, container_id=env.container_id, ifname=env.ifname, netns=env.netns
        )
        try:
            await call("agent", self.backends.agent.Detach(request, timeout=DEADLINE_S))
        except CniFailure as failure:
            log.warning(
                "agent failed during DEL: it removes the port when it next converges",
                extra={"network": network, "container_id": env.container_id, "details": failure.details},
            )

    def _networks_for_delete(self, env: CniEnv, conf: NetConf) -> list[str]:
        self.require_sync()
        net = self.view.network_for(conf.network, conf.name, env.pod_namespace)
        names = {net.name} if net is not None else set()
        if conf.network:
            names.add(conf.network)  # the network may be gone from the catalog; its leftovers are not
        names |= {k[0] for k in self.view.interfaces if k[1:] == (env.container_id, env.ifname)}
        return sorted(names)


def _interface_exists(exc: BaseException) -> bool:
    return isinstance(exc, CniFailure) and exc.code == Code.INTERFACE_EXISTS
