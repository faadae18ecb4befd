"""Where an instance keeps its sockets and state.

Default instance: sockets under /run/multinet, state under /var/lib/multinet. `--state-dir DIR` (or
MULTINET_STATE_DIR) runs a separate instance with everything under DIR (sockets in DIR/run)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_RUN_DIR = Path("/run/multinet")
DEFAULT_STATE_DIR = Path("/var/lib/multinet")
STATE_DIR_ENV = "MULTINET_STATE_DIR"


@dataclass(frozen=True, slots=True)
class InstancePaths:
    state_dir: Path
    run_dir: Path

    @classmethod
    def resolve(cls, state_dir: str | None = None) -> InstancePaths:
        chosen = state_dir or os.environ.get(STATE_DIR_ENV)
        if chosen:
            root = Path(chosen).absolute()
            return cls(root, root / "run")
        return cls(DEFAULT_STATE_DIR, DEFAULT_RUN_DIR)

    def socket(self, service: str) -> Path:
        """The gRPC socket of one service: netmgr, ipam, agent (per node: agent-NODE)."""
        return self.run_dir / f"{service}.sock"

    @property
    def cni_socket(self) -> Path:
        """The CNI front door's local transport, used by the `multinet` executable."""
        return self.run_dir / "cni.sock"

    @property
    def database(self) -> Path:
        return self.state_dir / "multinet.db"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "multinet.pid"

    def ensure(self) -> None:
        """Create both directories root-only (0700): sockets inside are then reachable by root alone."""
        for directory in (self.state_dir, self.run_dir):
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o700)


def unix_target(path: Path) -> str:
    return f"unix:{path}"
