"""Claiming a socket path: a stale socket is replaced, a live one or a file that is not a socket never is."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from services.common.sockets import SocketInUse, claim


def test_stale_socket_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "run" / "x.sock"
    path.parent.mkdir()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # bound, never listening: what a crashed server leaves
    claim(path)
    assert not path.exists()


def test_live_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.sock"
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(str(path))
    live.listen(1)
    try:
        with pytest.raises(SocketInUse, match="another process is serving"):
            claim(path)
        assert path.exists()
    finally:
        live.close()


def test_a_file_that_is_not_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "important.db"
    path.write_text("data")
    with pytest.raises(SocketInUse, match="not a socket"):
        claim(path)
    assert path.read_text() == "data"


def test_missing_parent_is_created(tmp_path: Path) -> None:
    claim(tmp_path / "a" / "b" / "x.sock")
    assert (tmp_path / "a" / "b").is_dir()
