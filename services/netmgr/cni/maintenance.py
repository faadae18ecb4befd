"""CHECK, STATUS and GC: verifying and cleaning what ADD made."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from multinet.v1 import agent_pb2, catalog_pb2, ipam_pb2

from .backends import DEADLINE_S, call
from .config import NetConf
from .env import CniEnv
from .errors import CniFailure, Code
from .handler import CniHandler
from .interface import owner_of

log = logging.getLogger("multinet.netmgr.cni")
# the node agent's words for an MTU that differs from the recorded one (see _expected)
_MTU_PROBLEM = re.compile(r"^interface \S+ has MTU \d+, expected \d+$")


# ------------------------------------------------------------------------------------------------------ CHECK
async def check(handler: CniHandler, env: CniEnv, conf: NetConf) -> None:
    """The interface, its addresses and routes really exist (asked of the node agent, which reads the kernel), the
    addresses are still reserved, and prevResult lists them. prevResult is the final result of the whole chain, so
    a later plugin's changes (tuning's MAC or MTU) are the expected state, not a failure (SPEC.md: CHECK)."""
    net = handler.network(env, conf)
    iface = handler.view.interfaces.get((net.name, env.container_id, env.ifname))
    if iface is None:
        raise CniFailure(
            Code.CHECK_FAILED,
            f"no {net.name} attachment for container {env.container_id} {env.ifname}",
            "ADD was not called for it, or it was deleted since",
        )
    problems: list[str] = []
    held = await call(
        "ipam",
        handler.backends.ipam.Check(
            ipam_pb2.CheckRequest(network=net.name, owner=owner_of(env)),
            timeout=DEADLINE_S,
        ),
    )
    held_ips = {a.address.split("/")[0] for a in held.allocations}
    problems += [f"address {ip} is not reserved in IPAM" for ip in iface.ips if ip.split("/")[0] not in held_ips]
    expected, mtu_known = _expected(iface, _prev_interface(conf.prev_result, env.ifname))
    verdict = await call(
        "agent",
        handler.backends.agent.CheckInterface(
            agent_pb2.CheckInterfaceRequest(interface=expected, network=net), timeout=DEADLINE_S
        ),
    )
    problems += [p for p in verdict.problems if mtu_known or not _MTU_PROBLEM.match(p)]
    problems += _prev_result_problems(conf, iface.ips, env.ifname)
    if problems:
        raise CniFailure(Code.CHECK_FAILED, problems[0], "; ".join(problems))


def _prev_interface(prev: dict[str, Any] | None, ifname: str) -> dict[str, Any] | None:
    for entry in (prev or {}).get("interfaces", []):
        if isinstance(entry, dict) and entry.get("name") == ifname and entry.get("sandbox"):
            return entry
    return None


def _expected(iface: catalog_pb2.PodInterface, listed: dict[str, Any] | None) -> tuple[catalog_pb2.PodInterface, bool]:
    """What the pod side should look like: the recorded interface with the MAC and MTU the chain's result states.
    Results before 1.1.0 carry no MTU: a later plugin may have changed it, so it is then not held against us."""
    expected = catalog_pb2.PodInterface()
    expected.CopyFrom(iface)
    mtu_known = False
    if listed is not None:
        if isinstance(listed.get("mac"), str) and listed["mac"]:
            expected.mac = listed["mac"].lower()
        if isinstance(listed.get("mtu"), int) and listed["mtu"] > 0:
            expected.mtu = listed["mtu"]
            mtu_known = True
    return expected, mtu_known


def _prev_result_problems(conf: NetConf, ips: Sequence[str], ifname: str) -> list[str]:
    prev = conf.prev_result or {}
    ours = {ip.split("/")[0] for ip in ips}
    listed = {str(entry.get("address", "")).split("/")[0] for entry in prev.get("ips", []) if isinstance(entry, dict)}
    problems = [f"prevResult does not list address {ip}" for ip in sorted(ours - listed)]
    if _prev_interface(prev, ifname) is None:
        problems.append(f"prevResult does not list interface {ifname} with its sandbox")
    return problems


# ------------------------------------------------------------------------------------------------------ STATUS
async def status(handler: CniHandler, env: CniEnv, conf: NetConf) -> None:
    """Succeeds only when an ADD on this network could succeed now (SPEC.md 1.1: STATUS).

    50 (not available): ADD would fail but what exists keeps working — the front door is not yet in sync with the
    catalog, the network is unknown, IPAM is unreachable, or the network's pool is exhausted.
    51 (not available, existing containers may have limited connectivity): this node's agent is unreachable or has
    not converged. Pods keep what the kernel holds, but nothing is repaired and no route to a pod created elsewhere
    (or away from one deleted) is programmed until the agent is back."""
    if not handler.view.in_sync or not handler.view.connected:
        raise CniFailure(
            Code.NOT_AVAILABLE,
            "multinet is not yet in sync with its catalog"
            if not handler.view.in_sync
            else "multinet cannot reach its catalog: an ADD would fail now",
            f"check that netmgr's catalog is running and reachable; catalog: {handler.view.last_error}",
        )
    try:
        net = handler.network(env, conf)
    except CniFailure as failure:
        raise CniFailure(Code.NOT_AVAILABLE, failure.msg, failure.details) from None
    try:
        state = await call("agent", handler.backends.agent.GetState(agent_pb2.AgentStateRequest(), timeout=DEADLINE_S))
    except CniFailure as failure:
        raise CniFailure(
            Code.NOT_AVAILABLE_LIMITED,
            f"the node agent of {handler.node} is not reachable: existing pods keep their interfaces, but nothing "
            "on this node is repaired or updated until it is back",
            failure.details or failure.msg,
        ) from None
    if not state.in_sync:
        raise CniFailure(
            Code.NOT_AVAILABLE_LIMITED,
            f"the node agent of {handler.node} has not converged yet (applied revision {state.applied_revision})",
        )
    try:
        pool = await call(
            "ipam",
            handler.backends.ipam.PoolStatus(
                ipam_pb2.PoolStatusRequest(network=net.name, config=handler.ipam_configs.get(conf, net)),
                timeout=DEADLINE_S,
            ),
        )
    except CniFailure as failure:
        raise CniFailure(Code.NOT_AVAILABLE, failure.msg, failure.details) from None
    if pool.exhausted:
        raise CniFailure(
            Code.NOT_AVAILABLE,
            f"the address pool of network {net.name} is exhausted",
            f"{pool.reserved} of {pool.size} addresses reserved; delete pods or widen the network's range",
        )


# ------------------------------------------------------------------------------------------------------ GC
async def gc(handler: CniHandler, env: CniEnv, conf: NetConf) -> None:
    """Remove every attachment of this network on this node that the runtime does not list as valid: interface
    (pod and node side, routes, rules), reservation and catalog record, each exactly as DEL removes them.

    The runtime calls GC once per network configuration, so every network gets collected, not only a default one.
    The keep list is node-local: a runtime only knows its own node's containers. That is why it is NOT handed to
    IPAM's Gc: IPAM is cluster-wide, and its Gc releases every reservation not in the keep list — on every node,
    live pods included. Reservations whose ADD never got recorded (a crash mid-ADD) are released by IPAM's
    reconciler, which compares against the catalog after a grace period."""
    handler.require_sync()
    names = _gc_networks(handler, env, conf)
    valid = set(conf.valid_attachments)
    whole = {container for container, ifname in valid if not ifname}  # an entry without ifname keeps them all
    stale = [
        iface
        for key, iface in handler.view.interfaces.items()
        if key[0] in names and (key[1], key[2]) not in valid and key[1] not in whole and iface.node == handler.node
    ]
    errors: list[str] = []
    for iface in stale:
        gone = CniEnv(command="DEL", container_id=iface.container_id, ifname=iface.ifname, netns=iface.netns)
        try:
            await handler.delete(gone, conf, [iface.network])
        except CniFailure as failure:  # go on with the others; report what could not be removed
            errors.append(f"{iface.container_id}/{iface.ifname}: {failure.msg}")
    log.info("gc", extra={"networks": sorted(names), "removed": len(stale) - len(errors), "failed": len(errors)})
    if errors:
        raise CniFailure(
            Code.TRY_AGAIN_LATER, f"GC could not remove {len(errors)} stale attachment(s)", "; ".join(errors)
        )


def _gc_networks(handler: CniHandler, env: CniEnv, conf: NetConf) -> set[str]:
    """The network this configuration means; also a network already gone from the catalog, named explicitly."""
    net = handler.view.network_for(conf.network, conf.name, env.pod_namespace)
    names = {net.name} if net is not None else set()
    if conf.network:
        names.add(conf.network)
    if not names:
        raise CniFailure(
            Code.INVALID_CONFIG,
            f"GC: configuration {conf.name!r} names no known network",
            "GC collects one network per call: pass that network's configuration",
        )
    return names
