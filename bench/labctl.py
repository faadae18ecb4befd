"""A lab for benchmarks: `multinetctl lab` in a private state directory, always torn down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=f"{REPO}:{REPO / 'proto'}")
SEED = REPO / "deploy" / "examples" / "seed-networks.yaml"


class BenchLab:
    def __init__(self, root: Path, name: str) -> None:
        self.state_dir = root / "lab"
        self.name = name

    def ctl(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "multinetctl", "lab", "--state-dir", str(self.state_dir), *args],
            capture_output=True,
            text=True,
            env=ENV,
            cwd=REPO,
        )
        if out.returncode != 0:
            raise SystemExit(f"lab {' '.join(args)} failed: {out.stderr}")
        return out.stdout

    def run_pod(self, pod: str, node: str, networks: str) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.ctl("run-pod", pod, "--node", node, "--networks", networks))
        return loaded

    def pod_netns(self, pod: str) -> str:
        return f"{self.name}-pod-{pod}"

    def node_netns(self, node: str) -> str:
        return f"{self.name}-{node}"

    def state(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.state_dir / "lab.json").read_text())
        return loaded


@contextmanager
def bench_lab(nodes: int) -> Iterator[BenchLab]:
    root = Path(tempfile.mkdtemp(prefix="multinet-bench-lab-"))
    lab = BenchLab(root, f"mnb{os.getpid() % 100000}")
    try:
        lab.ctl("up", "--nodes", str(nodes), "--name", lab.name, "-f", str(SEED))
        yield lab
    finally:
        subprocess.run(
            [sys.executable, "-m", "multinetctl", "lab", "--state-dir", str(lab.state_dir), "down", "--name", lab.name],
            capture_output=True,
            env=ENV,
            cwd=REPO,
        )
        subprocess.run(["rm", "-rf", str(root)])
