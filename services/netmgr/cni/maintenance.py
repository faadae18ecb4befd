"""CHECK, STATUS and GC: verifying and cleaning what ADD made."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from multinet.v1 import agent_pb2, ipam_pb2

from .backends import DEADLINE_S, call
from .config import NetConf
from .env import CniEnv
from .errors import CniFailure, Code
from .handler import CniHandler

log = logging.getLogger("multinet.netmgr.cni")


async def check(handler: CniHandler, env: CniEnv, conf: NetConf) -> None:
    """The interface, its addresses and routes really exist, and match the previous result."""
    net = handler.network(env, conf)
    iface = handler.view.interfaces.get((net.name, env.container_id, env.ifname))
    if iface is None:
        raise CniFailure(Code.CHECK_FAILED, f"no {net.name} attachment for container {env.container_id} {env.ifname}")
    problems: list[str] = []
    held = await call(
        "ipam",
        handler.backends.ipam.Check(
            ipam_pb2.CheckRequest(
                network=net.name, owner=ipam_pb2.Owner(container_id=env.container_id, ifname=env.ifname)
            ),
            timeout=DEADLINE_S,
        ),
    )
    held_ips = {a.address.split("/")[0] for a in held.allocations}
    for ip in iface.ips:
        if ip.split("/")[0] not in held_ips:
            problems.append(f"address {ip} is not reserved in IPAM")
    verdict = await call(
        "agent",
        handler.backends.agent.CheckInterface(
            agent_pb2.CheckInterfaceRequest(interface=iface, network=net), timeout=DEADLINE_S
        ),
    )
    problems += list(verdict.problems)
    problems += _prev_result_problems(conf, iface.ips, env.ifname)
    if problems:
        raise CniFailure(Code.CHECK_FAILED, problems[0], "; ".join(problems))


def _prev_result_problems(conf: NetConf, ips: Sequence[str], ifname: str) -> list[str]:
    prev = conf.prev_result
    if not prev:
        return []
    ours = {ip.split("/")[0] for ip in ips}
    listed = {str(entry.get("address", "")).split("/")[0] for entry in prev.get("ips", []) if isinstance(entry, dict)}
    problems = [f"prevResult does not list address {ip}" for ip in sorted(ours - listed)]
    names = {i.get("name") for i in prev.get("interfaces", []) if isinstance(i, dict)}
    if ifname not in names:
        problems.append(f"prevResult does not list interface {ifname}")
    return problems


async def status(handler: CniHandler, env: CniEnv, conf: NetConf) -> None:
    """Succeeds only when an ADD on this network could succeed now."""
    if not handler.view.in_sync:
        raise CniFailure(Code.NOT_AVAILABLE, "multinet is not yet in sync with its catalog")
    try:
        net = handler.network(env, conf)
        state = await call("agent", handler.backends.agent.GetState(agent_pb2.AgentStateRequest(), timeout=DEADLINE_S))
        pool = await call(
            "ipam",
            handler.backends.ipam.PoolStatus(
                ipam_pb2.PoolStatusRequest(network=net.name, config=handler.ipam_configs.get(conf, net)),
                timeout=DEADLINE_S,
            ),
        )
    except CniFailure as failure:
        raise CniFailure(Code.NOT_AVAILABLE, failure.msg, failure.details) from None
    if not state.in_sync:
        raise CniFailure(Code.NOT_AVAILABLE, f"the node agent of {handler.node} has not converged yet")
    if pool.exhausted:
        raise CniFailure(
            Code.NOT_AVAILABLE,
            f"the address pool of network {net.name} is exhausted",
            f"{pool.reserved} of {pool.size} addresses reserved",
        )


async def gc(handler: CniHandler, env: CniEnv, conf: NetConf) -> None:
    """Remove every attachment of this network on this node that the runtime does not list as valid."""
    net = handler.network(env, conf)
    valid = set(conf.valid_attachments)
    stale = [
        key
        for key, iface in handler.view.interfaces.items()
        if key[0] == net.name and (key[1], key[2]) not in valid and iface.node == handler.node
    ]
    for _network, container_id, ifname in stale:
        gone = CniEnv(
            command="DEL",
            container_id=container_id,
            ifname=ifname,
            netns=handler.view.interfaces[(net.name, container_id, ifname)].netns,
        )
        await handler.delete(gone, conf)
    # Reservations are not handed to IPAM's own Gc with this list: IPAM is cluster-wide and the runtime only
    # knows this node's containers. Addresses whose ADD never got recorded are freed by IPAM's reconciler.
    log.info("gc", extra={"network": net.name, "removed": len(stale)})
