"""Mutual TLS on TCP (services.common.tls with rpc.start_server / rpc.channel): real gRPC over loopback with
certificates made by `generate`; plaintext stays plaintext without MULTINET_TLS_DIR; unusable material is named."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from services.common import rpc, tls

METHOD = "/multinet.test.Echo/Echo"


def _echo_server(server: grpc.aio.Server) -> None:
    async def echo(request: bytes, context: object) -> bytes:
        return request

    handler = grpc.method_handlers_generic_handler(
        "multinet.test.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server.add_generic_rpc_handlers((handler,))


@pytest.fixture
def tls_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "tls"
    tls.generate(directory)
    monkeypatch.setenv(tls.ENV, str(directory))
    tls.configured.cache_clear()
    yield directory
    tls.configured.cache_clear()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _call(channel: grpc.aio.Channel) -> bytes:
    reply: bytes = await channel.unary_unary(METHOD, None, None)(b"ping", timeout=5)
    return reply


async def test_tcp_listener_and_channel_speak_mutual_tls(tls_env: Path) -> None:
    port = _free_port()
    server = await rpc.start_server([_echo_server], [f"127.0.0.1:{port}"])
    try:
        async with rpc.channel(f"127.0.0.1:{port}") as channel:
            assert await _call(channel) == b"ping"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as plain:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await _call(plain)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(None)


async def test_without_tls_dir_tcp_is_plaintext_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(tls.ENV, raising=False)
    tls.configured.cache_clear()
    server = await rpc.start_server([_echo_server], ["127.0.0.1:0"])
    try:
        assert any("without TLS" in r.getMessage() for r in caplog.records)
    finally:
        await server.stop(None)
        tls.configured.cache_clear()


def test_unusable_material_is_named(tmp_path: Path) -> None:
    with pytest.raises(tls.TlsError, match=r"ca\.crt"):
        tls.load(tmp_path)
    tls.generate(tmp_path)
    (tmp_path / "tls.key").write_text("not a key\n")
    with pytest.raises(tls.TlsError, match=r"tls\.key is not PEM"):
        tls.load(tmp_path)


def test_generate_keeps_existing_files_unless_forced(tmp_path: Path) -> None:
    first = tls.generate(tmp_path)
    before = [p.read_bytes() for p in first]
    with pytest.raises(tls.TlsError, match="--force"):
        tls.generate(tmp_path)
    assert [p.read_bytes() for p in first] == before
    tls.generate(tmp_path, force=True)
    assert [p.read_bytes() for p in first] != before
    assert (tmp_path / "tls.key").stat().st_mode & 0o777 == 0o600


def test_a_service_with_unusable_material_stops_naming_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(tls.ENV, str(tmp_path / "missing"))
    tls.configured.cache_clear()
    try:
        with pytest.raises(SystemExit, match=r"missing/ca\.crt"):
            tls.require()
    finally:
        tls.configured.cache_clear()


def test_multinetctl_tls_init(tmp_path: Path) -> None:
    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "multinetctl", "tls", "init", *args], capture_output=True, text=True, timeout=60
        )

    made = ctl(str(tmp_path / "t"))
    assert made.returncode == 0, made.stderr
    assert made.stdout.split() == [str(tmp_path / "t" / n) for n in ("ca.crt", "tls.crt", "tls.key")]
    assert f"{tls.ENV}=" in made.stderr
    tls.load(tmp_path / "t")
    again = ctl(str(tmp_path / "t"))
    assert again.returncode == 1 and "--force" in again.stderr
    assert ctl(str(tmp_path / "u"), "--days", "0").returncode == 2
