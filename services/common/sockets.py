"""Unix socket paths a service is about to listen on."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from pathlib import Path


class SocketInUse(OSError):
    pass


def claim(path: Path) -> None:
    """Make `path` free to bind: remove a stale socket left by a crash, but never a live one (another instance
    serves there) and never a file that is not a socket (a wrong path given by mistake)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise SocketInUse(f"{path} exists and is not a socket: refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)  # stale: nobody listens
        return
    finally:
        probe.close()
    raise SocketInUse(f"another process is serving on {path}: stop it first (or use another --state-dir)")


def restrict(path: Path) -> None:
    """Root-only (0600): whoever may connect may ask for interfaces, addresses and routes."""
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, 0o600)
