"""What a lab made, persisted as JSON in its state directory so every `lab` command (and `lab down` after a
crash) knows it. Writes are atomic (rename) and serialised by a lock file."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from services.common.files import write_atomically

DEFAULT_LAB_DIR = Path("/var/lib/multinet-lab")
CATALOG_PORT = 7001
IPAM_PORT = 7002


@dataclass
class NodeInfo:
    name: str
    netns: str
    underlay: str


@dataclass
class ProcInfo:
    pid: int
    node: str  # "" for the shared services
    role: str  # catalog, ipam, agent, cni
    argv: list[str]


@dataclass
class Attachment:
    network: str
    attachment: str
    ifname: str


@dataclass
class PodInfo:
    name: str
    node: str
    netns: str
    container_id: str
    attachments: list[Attachment] = field(default_factory=list)


@dataclass
class LabState:
    name: str
    fabric_netns: str
    fabric_cidr: str
    nodes: list[NodeInfo] = field(default_factory=list)
    processes: list[ProcInfo] = field(default_factory=list)
    pods: dict[str, PodInfo] = field(default_factory=dict)

    @property
    def fabric_ip(self) -> str:
        return self.fabric_cidr.rsplit(".", 1)[0] + ".254"

    def node(self, name: str) -> NodeInfo:
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes) or "none"
        raise LabError(f"no node {name!r} in lab {self.name} (nodes: {known})")


class LabError(Exception):
    pass


class LabDir:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def state_file(self) -> Path:
        return self.root / "lab.json"

    def node_dir(self, node: str) -> Path:
        return self.root / "nodes" / node

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def tls_dir(self) -> Path:
        """The lab's CA and role certificates (services/, nodes/): its processes speak mutual TLS on the fabric."""
        return self.root / "tls"

    def plugin(self, node: str) -> Path:
        """Each node has its own plugin directory (its socket file points at that node's CNI front door)."""
        return self.node_dir(node) / "bin" / "multinet"

    def exists(self) -> bool:
        return self.state_file.exists()

    def load(self) -> LabState:
        try:
            raw = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            raise LabError(f"no lab in {self.root} (start one with `multinetctl lab up --nodes N`)") from None
        state = LabState(raw["name"], raw["fabric_netns"], raw["fabric_cidr"])
        state.nodes = [NodeInfo(**n) for n in raw["nodes"]]
        state.processes = [ProcInfo(**p) for p in raw["processes"]]
        state.pods = {
            k: PodInfo(**{**p, "attachments": [Attachment(**a) for a in p["attachments"]]})
            for k, p in raw["pods"].items()
        }
        return state

    def save(self, state: LabState) -> None:
        write_atomically(self.state_file, json.dumps(asdict(state), indent=2).encode(), 0o644)

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "lab.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
