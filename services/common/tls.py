"""Mutual TLS for gRPC over TCP: the links between nodes and the shared services (catalog, IPAM).

Unix sockets stay plaintext: they are root-only (0600) and never leave the node. On TCP, when MULTINET_TLS_DIR
names a directory holding `ca.crt`, `tls.crt` and `tls.key` (the layout of a Kubernetes TLS Secret with its
CA), every listener requires a client certificate signed by that CA and every client checks the server's
certificate against it. All multinet certificates carry one name, SERVER_NAME, which clients check instead of
the address they dialled (services are reached by IP on the fabric). Without MULTINET_TLS_DIR, TCP is
plaintext and every listener says so in its log. `multinetctl tls init DIR` makes a CA and a certificate."""

from __future__ import annotations

import datetime
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import grpc

ENV = "MULTINET_TLS_DIR"
SERVER_NAME = "multinet"  # the DNS name in every certificate; clients verify it, not the address
CA_FILE, CERT_FILE, KEY_FILE = "ca.crt", "tls.crt", "tls.key"


class TlsError(Exception):
    """The TLS material cannot be used: says which file and why."""


@dataclass(frozen=True, slots=True)
class Material:
    ca: bytes
    cert: bytes
    key: bytes


def load(directory: str | Path) -> Material:
    """The CA, certificate and key from `directory` (PEM); TlsError naming the file that is missing or empty."""
    parts = []
    for name in (CA_FILE, CERT_FILE, KEY_FILE):
        path = Path(directory) / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise TlsError(f"{ENV}: cannot read {path}: {exc.strerror or exc}") from exc
        if b"-----BEGIN " not in data:
            raise TlsError(f"{ENV}: {path} is not PEM")
        parts.append(data)
    return Material(*parts)


@functools.cache
def configured() -> Material | None:
    """This process's material (from MULTINET_TLS_DIR, read once), None when TCP is to stay plaintext."""
    directory = os.environ.get(ENV, "").strip()
    return load(directory) if directory else None


def require() -> Material | None:
    """configured(), or the process exits naming what is wrong (a service's or the CLI's first step)."""
    try:
        return configured()
    except TlsError as exc:
        raise SystemExit(f"error: {exc}") from None


def server_credentials(material: Material) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [(material.key, material.cert)], root_certificates=material.ca, require_client_auth=True
    )


def channel_credentials(material: Material) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=material.ca, private_key=material.key, certificate_chain=material.cert
    )


def generate(directory: Path, days: int = 365, force: bool = False) -> list[Path]:
    """A new CA and one certificate for SERVER_NAME (server and client use, P-256), written to `directory`;
    keys 0600. Refuses to overwrite existing files unless `force`. Returns the files written."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    targets = [directory / n for n in (CA_FILE, CERT_FILE, KEY_FILE)]
    if not force and any(t.exists() for t in targets):
        raise TlsError(f"{directory} already holds TLS files (use --force to replace them)")
    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days))

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("multinet CA"))
        .issuer_name(name("multinet CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(SERVER_NAME))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    for path, data, mode in (
        (targets[0], ca.public_bytes(pem), 0o644),
        (targets[1], cert.public_bytes(pem), 0o644),
        (targets[2], key_pem, 0o600),
    ):
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode)  # umask may have narrowed it; never widened for the key
        os.replace(tmp, path)
    return targets
