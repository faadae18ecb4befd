"""The agent's view of the cluster, built from netmgr's desired-state stream (snapshot, then deltas), and the
node's DesiredNode derived from it. Pure: no I/O."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field

from multinet.v1 import agent_pb2, catalog_pb2

from . import convert
from .errors import InvalidSpec
from .model import DesiredNode, PeerNode

log = logging.getLogger("multinet.vppagent.state")
Key = tuple[str, str, str]


@dataclass(slots=True)
class ClusterState:
    networks: dict[str, catalog_pb2.Network] = field(default_factory=dict)
    nodes: dict[str, catalog_pb2.Node] = field(default_factory=dict)
    interfaces: dict[Key, catalog_pb2.PodInterface] = field(default_factory=dict)
    revision: int = 0
    synced: bool = False

    def apply(self, update: agent_pb2.DesiredStateUpdate) -> None:
        if update.snapshot:
            self.networks.clear()
            self.nodes.clear()
            self.interfaces.clear()
            self.synced = True
        for name in update.removed_networks:
            self.networks.pop(name, None)
        for name in update.removed_nodes:
            self.nodes.pop(name, None)
        for gone in update.removed_interfaces:
            self.interfaces.pop((gone.network, gone.container_id, gone.ifname), None)
        for net in update.networks:
            self.networks[net.name] = net
        for node in update.nodes:
            self.nodes[node.name] = node
        for iface in update.interfaces:
            self.interfaces[(iface.network, iface.container_id, iface.ifname)] = iface
        self.revision = max(self.revision, update.revision) if not update.snapshot else update.revision


def desired_node(state: ClusterState, node: str, underlay: str, default_mtu: int) -> DesiredNode:
    """What this node's dataplane should hold. Invalid objects are skipped (and logged), never fatal."""
    desired = DesiredNode(node=node, underlay=ipaddress.ip_address(underlay) if underlay else None)
    for net_msg in state.networks.values():
        try:
            desired.networks[net_msg.name] = convert.network(net_msg, default_mtu)
        except InvalidSpec as exc:
            log.error("skipping invalid network", extra={"network": net_msg.name, "error": str(exc)})
    for name, node_msg in state.nodes.items():
        if name != node and node_msg.underlay_ip:
            desired.peers[name] = PeerNode(name, ipaddress.ip_address(node_msg.underlay_ip))
    for key, iface in state.interfaces.items():
        net = desired.networks.get(iface.network)
        if net is None:
            continue
        if iface.node == node:
            try:
                desired.ports[key] = convert.port(iface, net)
            except InvalidSpec as exc:
                log.error("skipping invalid interface", extra={"key": key, "error": str(exc)})
        else:
            for remote in convert.remotes(iface):
                desired.remotes[(remote.network, remote.address)] = remote
    return desired
