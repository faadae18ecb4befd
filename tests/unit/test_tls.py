"""Mutual TLS on TCP (services.common.tls with rpc.start_server / rpc.channel): real gRPC over loopback with
certificates made by `generate`; plaintext stays plaintext without MULTINET_TLS_DIR; unusable material is named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from services.common import rpc, tls
from tests.fixtures.etcd import free_port
from tests.fixtures.tls import use

METHOD = "/multinet.test.Echo/Echo"


def _echo_server(server: grpc.aio.Server) -> None:
    async def echo(request: bytes, context: object) -> bytes:
        return request

    handler = grpc.method_handlers_generic_handler(
        "multinet.test.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server.add_generic_rpc_handlers((handler,))


def _make(root: Path, role: str = tls.SERVICES) -> Path:
    """New material under `root`; the directory of `role`'s."""
    tls.generate(root)
    return root / role


async def _call(channel: grpc.aio.Channel) -> bytes:
    reply: bytes = await channel.unary_unary(METHOD, None, None)(b"ping", timeout=5)
    return reply


def _tls_channel(port: int, directory: Path, *, ca: Path | None = None, client_cert: bool = True) -> grpc.aio.Channel:
    """A TLS client built by hand: `directory`'s certificate (or none), trusting `ca` (default: directory's)."""
    creds = grpc.ssl_channel_credentials(
        root_certificates=(ca or directory / "ca.crt").read_bytes(),
        private_key=(directory / "tls.key").read_bytes() if client_cert else None,
        certificate_chain=(directory / "tls.crt").read_bytes() if client_cert else None,
    )
    return grpc.aio.secure_channel(
        f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", tls.SERVER_NAME)]
    )


async def _outcome(channel: grpc.aio.Channel) -> grpc.StatusCode:
    """OK when the call went through, else the status it failed with."""
    async with channel:
        try:
            assert await _call(channel) == b"ping"
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


REFUSED, ACCEPTED = grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.OK


async def test_tcp_listener_takes_only_clients_with_a_certificate_from_its_ca(
    tls_material: Path, tmp_path: Path
) -> None:
    other = _make(tmp_path / "other")
    port = free_port()
    server = await rpc.start_server([_echo_server], [f"127.0.0.1:{port}"])
    try:
        async with rpc.channel(f"127.0.0.1:{port}") as channel:
            assert await _call(channel) == b"ping"
        assert await _outcome(grpc.aio.insecure_channel(f"127.0.0.1:{port}")) == REFUSED
        assert await _outcome(_tls_channel(port, tls_material, client_cert=False)) == REFUSED
        assert (
            await _outcome(_tls_channel(port, other, ca=tls_material / "ca.crt")) == REFUSED
        )  # another CA's certificate
        async with _tls_channel(port, tls_material) as channel:  # the hand-built client itself is sound
            assert await _call(channel) == b"ping"
        async with _tls_channel(port, tls_material.parent / tls.NODES) as channel:  # a node's certificate: a client's
            assert await _call(channel) == b"ping"
    finally:
        await server.stop(None)


async def test_a_nodes_certificate_can_neither_listen_nor_pose_as_a_service(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    nodes = _make(tmp_path / "tls", tls.NODES)
    use(monkeypatch, nodes)
    with pytest.raises(tls.TlsError, match="client-only certificate"):
        await rpc.start_server([_echo_server], [f"127.0.0.1:{free_port()}"])
    with pytest.raises(SystemExit, match="client-only certificate"):
        tls.require(["unix:/run/x.sock", "0.0.0.0:7001"])
    assert tls.require(["unix:/run/x.sock"]) is not None  # unix sockets take no certificate
    # a server made by hand with a node's key (what a compromised node could run): multinet's clients refuse
    # it, as its certificate is not for servers (extended key usage), although the CA and the name are right;
    # the same server with the services' key is accepted (the refusal is the certificate's purpose)
    for role, expected in ((tls.NODES, REFUSED), (tls.SERVICES, ACCEPTED)):
        port = free_port()
        rogue = grpc.aio.server()
        _echo_server(rogue)
        material = tls.load(nodes.parent / role)
        creds = grpc.ssl_server_credentials([(material.key, material.cert)])
        assert rogue.add_secure_port(f"127.0.0.1:{port}", creds) == port
        await rogue.start()
        try:
            assert await _outcome(rpc.channel(f"127.0.0.1:{port}")) == expected, role
        finally:
            await rogue.stop(None)


async def test_rpc_channel_refuses_a_server_whose_certificate_another_ca_signed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mine, theirs = _make(tmp_path / "mine"), _make(tmp_path / "theirs")
    use(monkeypatch, theirs)
    port = free_port()
    server = await rpc.start_server([_echo_server], [f"127.0.0.1:{port}"])
    try:
        use(monkeypatch, mine)
        assert await _outcome(rpc.channel(f"127.0.0.1:{port}")) == REFUSED
    finally:
        await server.stop(None)


async def test_without_tls_dir_tcp_is_plaintext_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    use(monkeypatch, None)
    port = free_port()
    server = await rpc.start_server([_echo_server], [f"127.0.0.1:{port}"])
    try:
        assert any("without TLS" in r.getMessage() for r in caplog.records)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as plain:
            assert await _call(plain) == b"ping"
    finally:
        await server.stop(None)


def test_unusable_material_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    good, other = _make(tmp_path / "good"), _make(tmp_path / "other")
    with pytest.raises(tls.TlsError, match=r"cannot read .*/ca\.crt"):
        tls.load(tmp_path)

    def broken(name: str, replace: str, source: Path) -> Path:
        made = tmp_path / name
        made.mkdir()
        for f in ("ca.crt", "tls.crt", "tls.key"):
            (made / f).write_bytes((source if f == replace else good).joinpath(f).read_bytes())
        return made

    not_pem = broken("not_pem", "tls.key", good)
    (not_pem / "tls.key").write_text("not a key\n")
    with pytest.raises(tls.TlsError, match=r"tls\.key is not an unencrypted PEM private key"):
        tls.load(not_pem)
    with pytest.raises(tls.TlsError, match=r"tls\.key is not the key of .*tls\.crt"):
        tls.load(broken("wrong_key", "tls.key", other))
    with pytest.raises(tls.TlsError, match=r"tls\.crt is not signed by .*ca\.crt"):
        tls.load(broken("wrong_ca", "ca.crt", other))
    monkeypatch.setattr(tls, "SERVER_NAME", "someone-else")
    named = _make(tmp_path / "named")
    monkeypatch.undo()
    with pytest.raises(tls.TlsError, match="does not name 'multinet'"):
        tls.load(named)
    assert tls.load(good).ca == (good / "ca.crt").read_bytes()


def test_generated_certificate_passes_strict_x509_verification(tmp_path: Path) -> None:
    """RFC 5280 profile (what Python 3.13's default ssl context and cryptography's verifier enforce): key
    identifiers, key usage, the name; and the roles: the services' certificate serves, the nodes' only as a client."""
    from cryptography import x509
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

    tls.generate(tmp_path)

    def cert(role: str, name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate((tmp_path / role / name).read_bytes())

    ca = cert(tls.SERVICES, "ca.crt")
    assert cert(tls.NODES, "ca.crt") == ca
    policy = PolicyBuilder().store(Store([ca]))
    server = policy.build_server_verifier(x509.DNSName(tls.SERVER_NAME))
    assert server.verify(cert(tls.SERVICES, "tls.crt"), [])[-1] == ca
    assert policy.build_client_verifier().verify(cert(tls.NODES, "tls.crt"), []).chain[-1] == ca
    assert policy.build_client_verifier().verify(cert(tls.SERVICES, "tls.crt"), []).chain[-1] == ca
    with pytest.raises(VerificationError):
        server.verify(cert(tls.NODES, "tls.crt"), [])
    assert tls.load(tmp_path / tls.SERVICES).serves and not tls.load(tmp_path / tls.NODES).serves


def test_generate_keeps_existing_files_unless_forced(tmp_path: Path) -> None:
    first = tls.generate(tmp_path)
    before = [p.read_bytes() for p in first]
    with pytest.raises(tls.TlsError, match="--force"):
        tls.generate(tmp_path)
    assert [p.read_bytes() for p in first] == before
    tls.generate(tmp_path, force=True)
    assert [p.read_bytes() for p in first] != before
    assert len(first) == 6 and all(p.exists() for p in first)
    for role in (tls.SERVICES, tls.NODES):
        assert (tmp_path / role / "tls.key").stat().st_mode & 0o777 == 0o600
        assert sorted(p.name for p in (tmp_path / role).iterdir()) == ["ca.crt", "tls.crt", "tls.key"]  # no temp
    with pytest.raises(tls.TlsError, match="validity"):
        tls.generate(tmp_path / "x", days=tls.MAX_DAYS + 1)


def test_a_service_with_unusable_material_stops_naming_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use(monkeypatch, tmp_path / "missing")
    with pytest.raises(SystemExit, match=r"missing/ca\.crt"):
        tls.require()


def test_multinetctl_tls_init(tmp_path: Path) -> None:
    def ctl(*args: str, tls_dir: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != tls.ENV}
        if tls_dir is not None:
            env[tls.ENV] = tls_dir
        return subprocess.run(
            [sys.executable, "-m", "multinetctl", *args], capture_output=True, text=True, timeout=60, env=env
        )

    target = str(tmp_path / "t")
    made = ctl("tls", "init", target, tls_dir=target)  # already exported, as the command advises: still works
    assert made.returncode == 0, made.stderr
    assert made.stdout.split() == [
        str(tmp_path / "t" / role / n) for role in ("services", "nodes") for n in ("ca.crt", "tls.crt", "tls.key")
    ]
    assert f"{tls.ENV}={tmp_path / 't' / 'nodes'}" in made.stderr
    assert tls.load(tmp_path / "t" / "services").serves and not tls.load(tmp_path / "t" / "nodes").serves
    again = ctl("tls", "init", target)
    assert again.returncode == 1 and "--force" in again.stderr
    assert ctl("tls", "init", str(tmp_path / "u"), "--days", "0").returncode == 2
    assert ctl("tls", "init", str(tmp_path / "u"), "--days", "99999999999").returncode == 2
    # unusable material is found where a command dials over TCP, and named; unix sockets never look at it
    nothing = str(tmp_path / "nothing")
    over_tcp = ctl("get", "networks", "--server", "127.0.0.1:9", tls_dir=nothing)
    assert over_tcp.returncode == 1 and f"{tmp_path / 'nothing' / 'ca.crt'}" in over_tcp.stderr, over_tcp.stderr
    local = ctl("get", "networks", "--state-dir", str(tmp_path / "s"), tls_dir=nothing)
    assert "ca.crt" not in local.stderr, local.stderr
