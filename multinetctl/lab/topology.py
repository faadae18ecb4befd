"""The lab's network: a fabric namespace with a bridge, one namespace per node with an uplink on the fabric
(each its own address), and pod namespaces. Plain iproute2 commands: what an operator would type."""

from __future__ import annotations

import ipaddress
import subprocess

from .state import LabError, LabState, NodeInfo

UPLINK = "uplink0"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def netns_names() -> set[str]:
    out = ip("netns", "list").stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def build_fabric(state: LabState) -> None:
    ns = state.fabric_netns
    ip("netns", "add", ns)
    ip("-n", ns, "link", "set", "lo", "up")
    ip("-n", ns, "link", "add", "br0", "type", "bridge")
    ip("-n", ns, "link", "set", "br0", "up")
    prefix = ipaddress.ip_network(state.fabric_cidr).prefixlen
    ip("-n", ns, "addr", "add", f"{state.fabric_ip}/{prefix}", "dev", "br0")
    # the fabric is a switch: bridged frames must not go through the host's iptables (br_netfilter, if loaded)
    for family in ("iptables", "ip6tables", "arptables"):
        subprocess.run(
            ["ip", "netns", "exec", ns, "sysctl", "-qw", f"net.bridge.bridge-nf-call-{family}=0"], capture_output=True
        )


def node_address(state: LabState, index: int) -> str:
    net = ipaddress.ip_network(state.fabric_cidr)
    if index >= net.num_addresses - 2:
        raise LabError(f"fabric {state.fabric_cidr} is too small for {index} nodes")
    return str(net.network_address + index)


def add_node(state: LabState, index: int, mtu: int) -> NodeInfo:
    node = NodeInfo(f"node{index}", f"{state.name}-node{index}", node_address(state, index))
    fabric_end = f"f{index}"
    prefix = ipaddress.ip_network(state.fabric_cidr).prefixlen
    ip("netns", "add", node.netns)
    ip(
        "-n",
        state.fabric_netns,
        "link",
        "add",
        fabric_end,
        "mtu",
        str(mtu),
        "type",
        "veth",
        "peer",
        "name",
        UPLINK,
        "mtu",
        str(mtu),
        "netns",
        node.netns,
    )
    ip("-n", state.fabric_netns, "link", "set", fabric_end, "master", "br0", "up")
    ip("-n", node.netns, "link", "set", "lo", "up")
    ip("-n", node.netns, "link", "set", UPLINK, "up")
    ip("-n", node.netns, "addr", "add", f"{node.underlay}/{prefix}", "dev", UPLINK)
    return node


def remove_netns(name: str) -> None:
    """Kill whatever still runs in it, then delete it (its links and the pods' veth peers go with it)."""
    pids = ip("netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        subprocess.run(["kill", "-9", pid], capture_output=True)
    ip("netns", "del", name, check=False)
