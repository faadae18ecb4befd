"""What every dataplane driver (linux, vpp) offers the agent. Drivers are synchronous: the agent runs them on
one dedicated thread, which also serialises every dataplane change."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..model import DesiredNode, NetworkSpec, PortSpec


@dataclass(frozen=True, slots=True)
class AttachResult:
    host_ifname: str
    mac: str
    mtu: int


@dataclass(slots=True)
class ReconcileReport:
    """What a full reconciliation changed (all zero when the dataplane already matched)."""

    added: int = 0
    removed: int = 0
    ports_recreated: int = 0
    ports_removed: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return self.added + self.removed + self.ports_recreated + self.ports_removed


PodMacListener = Callable[[tuple[str, str, str], str, str], None]


class Driver(Protocol):
    name: str

    def prepare(self) -> None:
        """One-time node set-up (forwarding, rule order); idempotent."""

    def tunnel_mtu(self, underlay_v6: bool = False) -> int:
        """The MTU left for pods once traffic is encapsulated on this node's uplink (over IPv6 when `underlay_v6`)."""

    def attach(self, port: PortSpec, network: NetworkSpec) -> AttachResult:
        """Create or repair one pod port and its host-side objects; idempotent."""

    def detach(self, port: PortSpec) -> bool:
        """Take a pod port out of service now (also when its netns is gone): its name is free and nothing routes
        to it when this returns. True if something existed."""

    def finish_detach(self, port: PortSpec) -> None:
        """Release what `detach` left for later (slow kernel work). Called from another thread than every other
        method, so it must not share their state unguarded."""

    def check(self, port: PortSpec, network: NetworkSpec) -> list[str]:
        """What is missing or different for this port (empty = healthy)."""

    def apply(self, desired: DesiredNode) -> ReconcileReport:
        """Converge to `desired` cheaply (e.g. by difference against what was applied last)."""

    def reconcile(self, desired: DesiredNode) -> ReconcileReport:
        """Read back everything the agent owns and converge it to `desired`, removing what it no longer wants."""

    def report_pod_macs(self, listener: PodMacListener) -> None:
        """Tell `listener(port key, pod netns, MAC)`, without blocking, of pod sides whose MAC is not their
        port's (a chained plugin set another). Drivers that do not follow pod MACs never call it."""

    def close(self) -> None: ...
