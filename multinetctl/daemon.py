"""Running `up` in the background (`up -d`) and stopping it (`down`) through its pid file."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from services.common.paths import InstancePaths

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


def running_pid(paths: InstancePaths) -> int | None:
    try:
        pid = int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:  # alive, and still `multinetctl up` (not another process that reused the pid since)
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    ours = any(arg.endswith(b"multinetctl") for arg in argv) and b"up" in argv
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X") or not ours:
        return None
    return pid


def start_detached(paths: InstancePaths, argv: list[str]) -> int:
    """Start `multinetctl up` (without -d) in its own session; return once it wrote its pid file."""
    if (pid := running_pid(paths)) is not None:
        print(f"error: multinet is already running (pid {pid}); `multinetctl down` first", file=sys.stderr)
        return 1
    paths.ensure()
    log_path = paths.state_dir / "multinet.log"
    with log_path.open("ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "multinetctl", *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            cwd="/",
        )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if running_pid(paths) == child.pid:
            print(f"multinet up (pid {child.pid}); sockets in {paths.run_dir}, log {log_path}")
            return 0
        if child.poll() is not None:
            print(f"error: multinet exited with status {child.returncode}; last log lines:", file=sys.stderr)
            print(_tail(log_path), file=sys.stderr)
            return 1
        time.sleep(0.05)
    child.terminate()
    print(f"error: multinet did not become ready within {READY_TIMEOUT_S:.0f}s; see {log_path}", file=sys.stderr)
    return 1


def down(args: argparse.Namespace) -> int:
    paths = InstancePaths.resolve(args.state_dir)
    pid = running_pid(paths)
    if pid is None:
        print("multinet is not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print(f"multinet stopped (pid {pid})")
            return 0
        time.sleep(0.05)
    print(f"error: pid {pid} did not stop within {STOP_TIMEOUT_S:.0f}s", file=sys.stderr)
    return 1


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
