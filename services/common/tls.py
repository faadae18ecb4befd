"""Mutual TLS for gRPC over TCP: the links between nodes and the shared services (catalog, IPAM).

Unix sockets stay plaintext: they are root-only (0600) and never leave the node. On TCP, when MULTINET_TLS_DIR
names a directory holding `ca.crt`, `tls.crt` and `tls.key` (the layout of a Kubernetes TLS Secret with its
CA), every listener requires a client certificate signed by that CA and every client checks the server's
certificate against it. All multinet certificates carry one name, SERVER_NAME, which clients check instead of
the address they dialled (services are reached by IP on the fabric). Without MULTINET_TLS_DIR, TCP is
plaintext and every listener says so in its log. `multinetctl tls init DIR` makes a CA and two certificates:
DIR/services (catalog, IPAM, etcd: server and client use) and DIR/nodes (agents and CNI front doors: client use
only, so a node's key cannot pose as a service to the other nodes); each directory is one component's
MULTINET_TLS_DIR."""

from __future__ import annotations

import datetime
import functools
import logging
import os
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography.exceptions import InvalidSignature

from .files import write_atomically

log = logging.getLogger("multinet.tls")

ENV = "MULTINET_TLS_DIR"
EXPIRY_WARNING = datetime.timedelta(days=30)
MAX_DAYS = 36500
SERVER_NAME = "multinet"  # the DNS name in every certificate; clients verify it, not the address
CA_FILE, CERT_FILE, KEY_FILE = "ca.crt", "tls.crt", "tls.key"
SERVICES, NODES = "services", "nodes"  # the roles `generate` makes a certificate for


class TlsError(Exception):
    """The TLS material cannot be used: says which file and why."""


@dataclass(frozen=True, slots=True)
class Material:
    ca: bytes
    cert: bytes
    key: bytes
    directory: Path  # where they were read (the ssl module loads a certificate chain from files only)
    serves: bool  # the certificate may be a server's (extended key usage serverAuth, or none given)


def load(directory: str | Path) -> Material:
    """The CA, certificate and key from `directory` (PEM), checked as a TLS handshake would need them: the key
    is the certificate's, the CA signed the certificate, the certificate names SERVER_NAME, both are valid now.
    TlsError naming the file and the problem otherwise (a warning is logged when expiry is under 30 days)."""
    raw = {}
    for name in (CA_FILE, CERT_FILE, KEY_FILE):
        path = Path(directory) / name
        try:
            raw[name] = path.read_bytes()
        except OSError as exc:
            raise TlsError(f"{ENV}: cannot read {path}: {exc.strerror or exc}") from exc
    serves = _check(Path(directory), raw[CA_FILE], raw[CERT_FILE], raw[KEY_FILE])
    return Material(raw[CA_FILE], raw[CERT_FILE], raw[KEY_FILE], Path(directory).resolve(), serves)


def _check(directory: Path, ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> bool:
    """Raises TlsError on what a handshake would refuse; returns whether the certificate may serve."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    def parse_cert(name: str, data: bytes) -> x509.Certificate:
        try:
            return x509.load_pem_x509_certificate(data)
        except ValueError as exc:
            raise TlsError(f"{ENV}: {directory / name} is not a PEM certificate ({exc})") from None

    ca, cert = parse_cert(CA_FILE, ca_pem), parse_cert(CERT_FILE, cert_pem)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:  # TypeError: encrypted (no one could type its password)
        raise TlsError(f"{ENV}: {directory / KEY_FILE} is not an unencrypted PEM private key ({exc})") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise TlsError(f"{ENV}: {directory / KEY_FILE} is not the key of {directory / CERT_FILE}")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise TlsError(f"{ENV}: {directory / CERT_FILE} is not signed by {directory / CA_FILE} ({exc})") from None
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = x509.SubjectAlternativeName([])
    if SERVER_NAME not in names.get_values_for_type(x509.DNSName):
        raise TlsError(f"{ENV}: {directory / CERT_FILE} does not name {SERVER_NAME!r} (every client checks it)")
    now = datetime.datetime.now(datetime.UTC)
    for name, c in ((CA_FILE, ca), (CERT_FILE, cert)):
        if not c.not_valid_before_utc <= now <= c.not_valid_after_utc:
            raise TlsError(
                f"{ENV}: {directory / name} is valid from {c.not_valid_before_utc:%Y-%m-%d} to "
                f"{c.not_valid_after_utc:%Y-%m-%d}, not now"
            )
        if c.not_valid_after_utc - now < EXPIRY_WARNING:
            log.warning("%s expires on %s: make new material and restart", directory / name, c.not_valid_after_utc)
    try:
        purposes = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True  # no restriction
    return ExtendedKeyUsageOID.SERVER_AUTH in purposes


@functools.cache
def configured() -> Material | None:
    """This process's material (from MULTINET_TLS_DIR), None when TCP is to stay plaintext. Read once: new
    material (rotation) takes a restart of the process."""
    directory = os.environ.get(ENV, "").strip()
    return load(directory) if directory else None


def require(listen: Sequence[str] = ()) -> Material | None:
    """configured() and check_serving(), or the process exits naming what is wrong: a service's first step,
    before it opens anything."""
    try:
        material = configured()
        check_serving(material, listen)
    except TlsError as exc:
        raise SystemExit(f"error: {exc}") from None
    return material


def check_serving(material: Material | None, listen: Sequence[str]) -> None:
    """TlsError when a client-only certificate (the nodes') is all a process has for listening on TCP."""
    tcp = [address for address in listen if not address.startswith("unix:")]
    if material is not None and tcp and not material.serves:
        raise TlsError(
            f"{ENV}={material.directory} holds a client-only certificate (the nodes'): listening on "
            f"{', '.join(tcp)} needs the services' material"
        )


def server_credentials(material: Material) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [(material.key, material.cert)], root_certificates=material.ca, require_client_auth=True
    )


def channel_credentials(material: Material) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=material.ca, private_key=material.key, certificate_chain=material.cert
    )


def client_ssl_context(material: Material) -> ssl.SSLContext:
    """For HTTPS clients (IPAM → etcd): trusts only the material's CA and presents its certificate. The peer
    must present a certificate naming SERVER_NAME: pass it as the request's server_hostname. The ssl module
    loads a certificate chain from files only: it gets private copies of the bytes that were checked."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=material.ca.decode())
    with tempfile.TemporaryDirectory(prefix="multinet-tls-") as private:  # 0700
        cert, key = Path(private) / CERT_FILE, Path(private) / KEY_FILE
        write_atomically(cert, material.cert, 0o600)
        write_atomically(key, material.key, 0o600)
        context.load_cert_chain(cert, key)
    return context


def generate(directory: Path, days: int = 365, force: bool = False) -> list[Path]:
    """A new CA and a certificate per role, each in its own subdirectory with `ca.crt`, `tls.crt`, `tls.key`
    (the key 0600): `services/` (catalog, IPAM, etcd: server and client use) and `nodes/` (agents, CNI front
    doors: client use only, so a node's key cannot pose as a service). Both name SERVER_NAME; P-256. Refuses to
    overwrite unless `force`. Returns the files written. The CA's key is not kept: new material means a new CA,
    given to every component at once."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not 1 <= days <= MAX_DAYS:
        raise TlsError(f"validity: {days} days, expected 1 to {MAX_DAYS}")
    roles = {
        SERVICES: [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        NODES: [ExtendedKeyUsageOID.CLIENT_AUTH],
    }
    files = [directory / role / n for role in roles for n in (CA_FILE, CERT_FILE, KEY_FILE)]
    if not force and any(f.exists() for f in files):
        raise TlsError(f"{directory} already holds TLS files (use --force to replace them)")
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def usage(sign_certs: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=not sign_certs,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=sign_certs,
            crl_sign=sign_certs,
            encipher_only=False,
            decipher_only=False,
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("multinet CA"))
        .issuer_name(name("multinet CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(sign_certs=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    for role, purposes in roles.items():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(f"{SERVER_NAME} {role}"))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(sign_certs=False), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage(purposes), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        (directory / role).mkdir(parents=True, exist_ok=True)
        write_atomically(directory / role / KEY_FILE, key_pem, 0o600)
        write_atomically(directory / role / CERT_FILE, cert.public_bytes(pem), 0o644)
        write_atomically(directory / role / CA_FILE, ca.public_bytes(pem), 0o644)
    return files
