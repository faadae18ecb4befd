"""The deployment artefacts against the code they run, without running anything: docker-compose.yml,
deploy/kubernetes/*.yaml and deploy/Dockerfile.

- Every multinet command line (compose `command:`, Kubernetes `args:`) is parsed by multinetctl's parser and by
  the service's own argparse parser, and every `--flag` must be one the service lists (no abbreviations).
- The addresses the pieces name for each other agree: a `--catalog`/`--ipam`/`--agent`/`--server`/`--store`
  target reaches a service of the right kind on a port (or unix socket) it listens on, through the published
  port, the Service and its targetPort, or a shared directory; the CNI socket is where the `multinet`
  executable on the host looks for it.
- No hop over TCP is plaintext: every multinet container whose arguments name a TCP listener or target
  (host:port, or an etcd store) has MULTINET_TLS_DIR, and that directory is a read-only mount of its role's
  material (`multinetctl tls init DIR` writes DIR/services and DIR/nodes): the services material (server and
  client certificate) for the catalog, IPAM and etcd, the nodes material (client only) for everything else
  (agents, CNI front doors, install-cni, the CLI). In Kubernetes that is the Secret `multinet-tls-services` or
  `multinet-tls-nodes` (exactly the three files, owner-only mode); in compose, where the one-shot `tls-init` puts
  DIR/ROLE (a named volume, or a path in one). No other container is given the services material: compose mounts
  no volume holding it into a node container; no node container mounts the services' Secret (secret or projected
  volume), takes a variable from it, or runs in a pod declaring it. Every compose service using the material
  waits for `tls-init` to complete, and `tls-init`'s script is run here to show it creates the material once and
  then leaves it alone, and makes a whole new set when part of it is missing.
- IPAM's store is etcd over mutual TLS: every `--store etcd:` URL is https, and every etcd serves https clients
  only (client and advertised URLs), requires client certificates (--client-cert-auth) and takes its CA,
  certificate and key from that same read-only mount of the services material; its compose healthcheck and its
  Kubernetes probes still pass such an etcd (etcdctl with that CA, certificate and key over https, skipping the
  server check only on loopback; no httpGet the kubelet would send without a client certificate). etcd's peer
  URLs are not checked: they stay plain HTTP (one member in compose; the shared certificate cannot serve peers).
- The Network CRD's schema accepts the seed's Networks and refuses out-of-range ones.
Each check returns the problems it found, so the last tests can show that a broken artefact is caught."""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import ipaddress
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from multinetctl.__main__ import build_parser
from services.common import tls
from services.common.paths import DEFAULT_RUN_DIR
from services.common.validate import VNI_MAX
from services.netmgr.__main__ import parse as parse_netmgr
from services.vppagent.__main__ import parse as parse_agent

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
K8S_DIR = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
SEED = ROOT / "deploy" / "examples" / "seed-networks.yaml"
IPAM_MAIN = ROOT / "services" / "ipam" / "__main__.py"
IMAGE_PREFIX = "multinet:"
NAMESPACE = "multinet-system"
CNI_SOCKET = str(DEFAULT_RUN_DIR / "cni.sock")  # what install-cni writes in conflists; the shim's default
CNI_HOST_DIRS = {"--bin-dir": "/opt/cni/bin", "--conf-dir": "/etc/cni/net.d"}
# role (`tls init DIR` writes DIR/ROLE) -> the Kubernetes Secret, and compose's named volume, holding its material
TLS_MATERIAL = {tls.SERVICES: "multinet-tls-services", tls.NODES: "multinet-tls-nodes"}
TLS_SERVICES, TLS_NODES = TLS_MATERIAL[tls.SERVICES], TLS_MATERIAL[tls.NODES]
SERVICE_KINDS = frozenset({"catalog", "ipam", "etcd"})  # they serve TCP: the services material; the rest: nodes'
TLS_FILES = (tls.CA_FILE, tls.CERT_FILE, tls.KEY_FILE)
TLS_INIT = "tls-init"  # compose's one-shot service that writes the material into those volumes
# etcd's and etcdctl's flags naming the CA, the certificate and the key: each must be that file of the material
ETCD_MATERIAL = {"--trusted-ca-file": tls.CA_FILE, "--cert-file": tls.CERT_FILE, "--key-file": tls.KEY_FILE}
# Boolean flags of etcd and etcdctl (Go flags: a boolean never takes the next token as its value)
GO_BOOLEANS = frozenset(
    {"--client-cert-auth", "--peer-client-cert-auth", "--auto-tls", "--peer-auto-tls", "--enable-pprof",
     "--enable-v2", "--strict-reconfig-check", "--force-new-cluster", "--debug",  # etcd
     "--insecure-skip-tls-verify", "--insecure-transport", "--insecure-discovery", "--hex", "--cluster"}  # etcdctl
)  # fmt: skip
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
# (program, flag) -> the kind of service that flag must reach
REFERENCES = {
    ("netmgr", "--catalog"): "catalog",
    ("netmgr", "--ipam"): "ipam",
    ("netmgr", "--agent"): "agent",
    ("agent", "--catalog"): "catalog",
    ("ipam", "--catalog"): "catalog",
    ("ipam", "--store"): "etcd",
    ("install-cni", "--server"): "catalog",
    ("apply", "--server"): "catalog",
    ("get", "--server"): "catalog",
    ("delete", "--server"): "catalog",
}
Address = tuple[str, str | int]  # ("unix", path) or (host, port)
Doc = dict[str, Any]
Location = tuple[str, str]  # (compose named volume, path inside it; "" for its root)


def load_yaml(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def tls_role(kinds: set[str]) -> str:
    """The material a container is to be given: the services' (server and client certificate) if it is the
    catalog, IPAM or etcd, else the nodes' (client only): agents, CNI front doors, install-cni, the CLI, others."""
    return tls.SERVICES if kinds & SERVICE_KINDS else tls.NODES


# ---------------------------------------------------------------------------------------------------- commands


class ArgError(Exception):
    pass


def parse_quietly(parse: Callable[[list[str]], object], argv: Sequence[str]) -> None:
    """Run an argparse-based parse; its error (SystemExit + usage on stderr) becomes ArgError."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parse(list(argv))
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise ArgError(err.getvalue().strip().splitlines()[-1] if err.getvalue() else str(exc)) from None


@dataclass(frozen=True)
class Command:
    """A command line given to the multinet image, whose entrypoint is `python3 -m multinetctl`."""

    where: str
    argv: tuple[str, ...]

    @property
    def program(self) -> str:
        """netmgr, ipam or agent for `serve X`, else the multinetctl subcommand (install-cni, get, ...)."""
        if len(self.argv) > 1 and self.argv[0] == "serve":
            return self.argv[1]
        return self.argv[0] if self.argv else ""

    @property
    def program_argv(self) -> tuple[str, ...]:
        return self.argv[2:] if self.argv[:1] == ("serve",) else self.argv[1:]

    def options(self) -> Iterator[tuple[str, str | None]]:
        """(flag, value) pairs; every flag these artefacts use takes one value (`--f v` or `--f=v`)."""
        argv = self.program_argv
        for i, token in enumerate(argv):
            if not token.startswith("--"):
                continue
            if "=" in token:
                flag, _, value = token.partition("=")
                yield flag, value
            else:
                following = argv[i + 1] if i + 1 < len(argv) else None
                yield token, None if following is None or following.startswith("--") else following

    def values(self, flag: str) -> list[str]:
        return [v for f, v in self.options() if f == flag and v is not None]

    def value(self, flag: str) -> str | None:
        found = self.values(flag)
        return found[-1] if found else None

    def provides(self) -> set[str]:
        if self.program == "netmgr":
            return {r.strip() for r in (self.value("--roles") or "catalog,cni").split(",") if r.strip()}
        return {self.program} if self.program in ("ipam", "agent") else set()


def usage_flags(help_text: str) -> frozenset[str]:
    """The long options in argparse's usage block (which lists every option, unlike the prose after it)."""
    usage = help_text.split("\n\n", 1)[0]
    return frozenset(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", usage))


def help_of(parse: Callable[[list[str]], object], argv: Sequence[str] = ()) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        parse([*argv, "--help"])
    return out.getvalue()


@dataclass(frozen=True)
class Program:
    flags: frozenset[str]
    parse: Callable[[list[str]], object] | None  # the full parse, when it can be called in-process


@cache
def ipam_help() -> str:
    """`python -m services.ipam --help`, in a subprocess: the IPAM service is checked through its CLI."""
    path = os.pathsep.join(p for p in (str(ROOT), str(ROOT / "proto"), os.environ.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "services.ipam", "--help"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"python -m services.ipam --help failed:\n{proc.stderr}"
    return proc.stdout


def ipam_parser() -> Callable[[list[str]], object] | None:
    try:
        module = importlib.import_module("services.ipam.__main__")
    except ImportError:
        return None
    for name in ("parse_args", "parse"):
        candidate = getattr(module, name, None)
        if callable(candidate):
            return candidate  # type: ignore[no-any-return]
    return None


@cache
def program(name: str) -> Program:
    if name == "netmgr":
        return Program(usage_flags(help_of(parse_netmgr)), parse_netmgr)
    if name == "agent":
        return Program(usage_flags(help_of(parse_agent)), parse_agent)
    if name == "ipam":
        if not IPAM_MAIN.exists():
            pytest.fail(f"{IPAM_MAIN.relative_to(ROOT)} is gone: the manifests' ipam flags cannot be checked")
        return Program(usage_flags(ipam_help()), ipam_parser())

    def parse_sub(argv: list[str]) -> object:
        return build_parser().parse_args([name, *argv])

    return Program(usage_flags(help_of(build_parser().parse_args, [name])), parse_sub)


def flag_problems(cmd: Command) -> list[str]:
    try:
        parse_quietly(build_parser().parse_args, cmd.argv)
    except ArgError as exc:
        return [f"{cmd.where}: multinetctl refuses {list(cmd.argv)}: {exc}"]
    known = program(cmd.program)
    unknown = sorted({flag for flag, _ in cmd.options() if flag not in known.flags})
    if unknown:
        return [f"{cmd.where}: {cmd.program} has no option {', '.join(unknown)} (it has {sorted(known.flags)})"]
    if known.parse is not None:
        try:
            parse_quietly(known.parse, cmd.program_argv)
        except ArgError as exc:
            return [f"{cmd.where}: {cmd.program} refuses {list(cmd.program_argv)}: {exc}"]
    return []


def target_addresses(value: str) -> list[Address]:
    """A gRPC target (unix:PATH, HOST:PORT, ipv4:A:P,B:Q, dns:///H:P) or an etcd store URL list."""
    if value.startswith("unix:"):
        return [("unix", value.removeprefix("unix:"))]
    if value.startswith("etcd:"):
        urls = value.removeprefix("etcd:").split("?", 1)[0].split(",")
        return [(urlsplit(u).hostname or "", urlsplit(u).port or 2379) for u in urls]
    for scheme in ("dns:///", "dns:", "ipv4:", "ipv6:"):
        value = value.removeprefix(scheme)
    addresses: list[Address] = []
    for item in value.split(","):
        host, _, port = item.rpartition(":")
        addresses.append((host.strip("[]"), int(port) if port.isdigit() else port))
    return addresses


def listen_ports(argv: Sequence[str], cmd: Command | None) -> set[str | int]:
    """TCP ports and unix paths a container listens on: multinet's --listen, etcd's --listen-client-urls."""
    found: set[str | int] = set()
    if cmd is not None:
        for value in cmd.values("--listen"):
            found.update(port for _, port in target_addresses(value))
    for token in argv:
        if token.startswith("--listen-client-urls="):
            found.update(urlsplit(u).port or 2379 for u in token.partition("=")[2].split(","))
    return found


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} / ${VAR-default} / ${VAR} with no variable set: what a plain `up` gets."""
    value = re.sub(r"\$\{\w+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", value)
    return value.replace("$$", "$")


# ----------------------------------------------------------------------------------------------------- compose


@dataclass(frozen=True)
class ComposeService:
    name: str
    spec: Doc

    @property
    def host_network(self) -> bool:
        return self.spec.get("network_mode") == "host"

    @property
    def argv(self) -> list[str]:
        command = self.spec.get("command", [])
        assert isinstance(command, list), f"services.{self.name}.command: use the list form"
        return [interpolate(str(a)) for a in command]

    @property
    def multinet_image(self) -> bool:
        return str(self.spec.get("image", "")).startswith(IMAGE_PREFIX)

    @property
    def command(self) -> Command | None:
        """The multinetctl command line; None for other images and for an `entrypoint:` other than the image's."""
        if not self.multinet_image or "entrypoint" in self.spec:
            return None
        return Command(f"docker-compose.yml services.{self.name}", tuple(self.argv))

    def environment(self) -> dict[str, str]:
        env = self.spec.get("environment", {})
        if isinstance(env, list):
            env = dict(str(item).partition("=")[::2] for item in env)
        return {str(k): interpolate(str(v)) for k, v in env.items()}

    def named_volumes(self) -> dict[str, tuple[Location, bool]]:
        """container path -> ((named volume, path inside it), read-only) of its named-volume mounts; the path is
        "" but with the long syntax's `volume: {subpath: P}`."""
        found: dict[str, tuple[Location, bool]] = {}
        for volume in self.spec.get("volumes", []):
            if isinstance(volume, str):
                source, _, rest = volume.partition(":")
                target, _, mode = rest.partition(":")
                if source and not source.startswith(("/", ".", "~")):
                    found[target] = ((source, ""), "ro" in mode.split(","))
            elif volume.get("type") == "volume":
                subpath = inner_path(str((volume.get("volume") or {}).get("subpath", "")))
                found[volume["target"]] = ((volume.get("source", ""), subpath), bool(volume.get("read_only")))
        return found

    def volume_at(self, path: str) -> tuple[Location, bool] | None:
        """Where `path` in this container is in the named volumes, through the deepest mount holding it, and
        whether that mount is read-only; None if it is in no named volume."""
        best: tuple[PurePosixPath, tuple[Location, bool]] | None = None
        for target, ((volume, subpath), read_only) in self.named_volumes().items():
            mount, wanted = PurePosixPath(target), PurePosixPath(path)
            if wanted.is_relative_to(mount) and (best is None or len(mount.parts) > len(best[0].parts)):
                best = (mount, ((volume, inner_path(subpath, *wanted.relative_to(mount).parts)), read_only))
        return best[1] if best else None

    @property
    def kinds(self) -> set[str]:
        if "etcd" in str(self.spec.get("image", "")):
            return {"etcd"}
        return self.command.provides() if self.command else set()

    def binds(self) -> dict[str, str]:
        """container path -> host path of its bind mounts."""
        found: dict[str, str] = {}
        for volume in self.spec.get("volumes", []):
            if isinstance(volume, str):
                source, _, rest = volume.partition(":")
                if source.startswith(("/", ".")):
                    found[rest.split(":", 1)[0]] = source
            elif volume.get("type") == "bind":
                found[volume["target"]] = volume["source"]
        return found

    def published(self) -> list[tuple[str, int, int]]:
        """(host ip, host port, container port) of `ports:` entries."""
        found = []
        for entry in self.spec.get("ports", []):
            parts = str(entry).split(":")
            ip = parts[0] if len(parts) == 3 else "0.0.0.0"
            found.append((ip, int(parts[-2]), int(parts[-1].split("/")[0])))
        return found


def compose_services(doc: Doc) -> dict[str, ComposeService]:
    return {name: ComposeService(name, spec) for name, spec in doc["services"].items()}


def inner_path(*parts: str) -> str:
    """A path inside a named volume, normalised: no leading or trailing slash, "" for the volume's root."""
    return "/".join(part for p in parts for part in PurePosixPath(p).parts if part not in ("/", "."))


def overlaps(a: Location, b: Location) -> bool:
    """Whether one of two places in the named volumes holds the other: a mount of either shows (some of) both."""
    pa, pb = PurePosixPath("/", a[1]), PurePosixPath("/", b[1])
    return a[0] == b[0] and (pa.is_relative_to(pb) or pb.is_relative_to(pa))


def describe(location: Location) -> str:
    volume, path = location
    return f"volume {volume}" + (f" path {path}" if path else "")


def compose_reach(services: dict[str, ComposeService], src: ComposeService, addr: Address) -> list[str]:
    """The services `src` reaches at `addr`; empty if none does."""
    host, port = addr
    if host == "unix":
        socket_dir = str(PurePosixPath(str(port)).parent)
        source = src.binds().get(socket_dir)
        return [
            s.name
            for s in services.values()
            if port in listen_ports(s.argv, s.command) and source is not None and s.binds().get(socket_dir) == source
        ]
    if src.host_network:
        if host not in ("127.0.0.1", "localhost"):
            return []
        return [
            s.name
            for s in services.values()
            for ip, host_port, container_port in s.published()
            if host_port == port
            and ip in ("127.0.0.1", "0.0.0.0")
            and container_port in listen_ports(s.argv, s.command)
        ]
    target = services.get(host)
    if target is None or target.host_network or port not in listen_ports(target.argv, target.command):
        return []
    return [target.name]


def compose_problems(doc: Doc) -> list[str]:
    services = compose_services(doc)
    problems: list[str] = []
    for svc in services.values():
        cmd = svc.command
        if cmd is None:
            continue
        for flag, value in cmd.options():
            kind = REFERENCES.get((cmd.program, flag))
            if kind is None or value is None:
                continue
            for addr in target_addresses(value):
                reached = compose_reach(services, svc, addr)
                if not reached:
                    problems.append(f"{cmd.where}: {flag} {value}: nothing listens at {addr} for this service")
                elif not any(kind in services[name].kinds for name in reached):
                    problems.append(f"{cmd.where}: {flag} {value} reaches {reached}, which is not a {kind}")
        problems += compose_node_problems(services, svc, cmd)
    return problems


def compose_node_problems(services: dict[str, ComposeService], svc: ComposeService, cmd: Command) -> list[str]:
    problems: list[str] = []
    if cmd.program == "install-cni":
        for flag, host_dir in CNI_HOST_DIRS.items():
            if svc.binds().get(cmd.value(flag) or "") != host_dir:
                problems.append(f"{cmd.where}: {flag} {cmd.value(flag)} is not the host's {host_dir}")
    if "cni" not in cmd.provides():
        return problems
    cni_socket = cmd.value("--cni-socket")
    socket_dir = str(PurePosixPath(str(cni_socket)).parent)
    if cni_socket != CNI_SOCKET or svc.binds().get(socket_dir) != socket_dir:
        problems.append(f"{cmd.where}: --cni-socket {cni_socket} must be {CNI_SOCKET}, in that host directory")
    agents = [name for a in target_addresses(cmd.value("--agent") or "") for name in compose_reach(services, svc, a)]
    node = cmd.value("--node")
    for name in agents:
        agent_cmd = services[name].command
        if node is None or agent_cmd is None or agent_cmd.value("--node") != node:
            problems.append(f"{cmd.where}: --node {node} differs from its agent's ({name})")
    return problems


# ---------------------------------------------------------------------------------------------- TLS on TCP


def tcp_values(cmd: Command) -> list[str]:
    """The options naming a listener or target on TCP, which MULTINET_TLS_DIR secures: gRPC ones (HOST:PORT,
    ipv4:A:P,B:Q, dns:///H:P) and etcd store URLs (etcd:https://... uses that material too; etcd_store_problems
    refuses etcd:http://...). Not unix: sockets (plaintext by design), not a sqlite: store, not a bare IP address
    (an IPv6 --underlay-ip has colons too)."""
    found = []
    for flag, value in cmd.options():
        if value is None or ":" not in value or value.startswith("unix:"):
            continue
        with contextlib.suppress(ValueError):
            ipaddress.ip_interface(value)
            continue
        if any(isinstance(port, int) for _, port in target_addresses(value)):
            found.append(f"{flag} {value}")
    return found


def etcd_store_problems(cmd: Command) -> list[str]:
    """IPAM's etcd store is reached over https only (etcd:https://A[,https://B]), i.e. with the multinet material."""
    problems = []
    for value in cmd.values("--store"):
        if not value.startswith("etcd:"):
            continue
        plain = [u for u in value.removeprefix("etcd:").split("?", 1)[0].split(",") if urlsplit(u).scheme != "https"]
        if plain:
            problems.append(f"{cmd.where}: --store {value}: {plain} not https, so IPAM to etcd is plaintext")
    return problems


def go_flags(argv: Sequence[str]) -> dict[str, str]:
    """The flags of an etcd or etcdctl command line: `--f=v`, `--f v`, a boolean `--f` ("true"); Go also takes
    `-f`. The last of each wins, as in Go; other tokens (the program, etcdctl's subcommand) are skipped."""
    found: dict[str, str] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if not token.startswith("-") or token in ("-", "--"):
            continue
        name, eq, value = token.partition("=")
        name = "--" + name.lstrip("-")
        if not eq and name in GO_BOOLEANS:
            value = "true"
        elif not eq and i < len(argv):
            value, i = argv[i], i + 1
        found[name] = value
    return found


def go_true(value: str | None) -> bool:
    return value in ("1", "t", "T", "true", "TRUE", "True")


def https_only(where: str, flag: str, urls: str | None) -> list[str]:
    """Problems with a comma-separated URL list that is not all https (None: the flag is missing, and etcd's
    defaults are http://localhost:...)."""
    plain = [u for u in (urls or "").split(",") if urlsplit(u).scheme != "https"]
    return [f"{where}: {flag} {plain} not https"] if plain else []


# (what uses the directory, said with the directory; the directory) -> problems with how the material is mounted
MountCheck = Callable[[str, str], list[str]]


def etcd_tls_problems(where: str, argv: Sequence[str], mount_problems: MountCheck) -> list[str]:
    """etcd takes clients over https only, requires a client certificate from the multinet CA, and serves the
    multinet certificate (the name ipam checks): --trusted-ca-file, --cert-file and --key-file are ca.crt, tls.crt
    and tls.key of one directory, the read-only mount of the material. Flags only, not ETCD_* variables."""
    flags = go_flags(argv)
    problems = [*https_only(where, "--listen-client-urls", flags.get("--listen-client-urls"))]
    problems += https_only(where, "--advertise-client-urls", flags.get("--advertise-client-urls"))
    if not go_true(flags.get("--client-cert-auth")):
        problems.append(f"{where}: no --client-cert-auth: etcd would take clients without a certificate")
    paths = {flag: flags.get(flag) for flag in ETCD_MATERIAL}
    wrong = [f"{flag} {path}" for flag, path in paths.items() if PurePosixPath(path or "").name != ETCD_MATERIAL[flag]]
    if wrong:
        return [*problems, f"{where}: {', '.join(wrong)}: not the multinet material's {ETCD_MATERIAL}"]
    directories = sorted({str(PurePosixPath(str(path)).parent) for path in paths.values()})
    if len(directories) != 1:
        return [*problems, f"{where}: {', '.join(ETCD_MATERIAL)} are not in one directory ({directories})"]
    return problems + mount_problems(f"{where}: {', '.join(ETCD_MATERIAL)} in {directories[0]}", directories[0])


LOOPBACK = ("127.0.0.1", "::1", "localhost")
ETCDCTL_FOR_ETCD = {"--cacert": "--trusted-ca-file", "--cert": "--cert-file", "--key": "--key-file"}


def etcdctl_problems(where: str, argv: Sequence[str], etcd_argv: Sequence[str]) -> list[str]:
    """A health check that such an etcd lets through: etcdctl over https with the CA, certificate and key etcd
    itself uses. It may skip checking etcd's certificate (which names `multinet`, not the address dialled, which
    etcdctl would compare) only towards loopback, the container's own etcd."""
    if not argv or PurePosixPath(argv[0]).name != "etcdctl":
        return [f"{where}: {list(argv)} is not an etcdctl command (the only health check known here)"]
    flags, etcd = go_flags(argv[1:]), go_flags(etcd_argv)
    endpoints = flags.get("--endpoints", "127.0.0.1:2379")  # etcdctl's default
    problems = https_only(f"{where}: etcdctl", "--endpoints", endpoints)
    for flag, etcd_flag in ETCDCTL_FOR_ETCD.items():
        if flags.get(flag) is None or flags.get(flag) != etcd.get(etcd_flag):
            problems.append(f"{where}: etcdctl {flag} {flags.get(flag)}, etcd's {etcd_flag} {etcd.get(etcd_flag)}")
    remote = [e for e in endpoints.split(",") if urlsplit(e).hostname not in LOOPBACK]
    if go_true(flags.get("--insecure-skip-tls-verify")) and remote:
        problems.append(f"{where}: etcdctl --insecure-skip-tls-verify towards {remote}, which is not loopback")
    return problems


def tls_init_script(svc: ComposeService) -> str:
    entrypoint = svc.spec.get("entrypoint")
    assert isinstance(entrypoint, list) and entrypoint[:2] == ["sh", "-c"] and len(entrypoint) == 3, (
        f"services.{svc.name}.entrypoint: expected [sh, -c, SCRIPT], got {entrypoint!r}"
    )
    return interpolate(str(entrypoint[2]))


def tls_init_dir(script: str) -> str | None:
    """The DIR of the script's `python3 -m multinetctl tls init [--force] DIR` (None if it has no such call)."""
    match = re.search(r"python3 -m multinetctl ([^;&|]+)", script)
    if match is None:
        return None
    namespace = build_parser().parse_args(shlex.split(match.group(1)))
    if namespace.command != "tls" or namespace.tls_command != "init":
        return None
    return str(namespace.dir)


def compose_material(init: ComposeService) -> tuple[dict[str, Location], list[str]]:
    """role -> where tls-init's `multinetctl tls init DIR` leaves that role's material (DIR/ROLE: a named volume
    and the path in it), and the problems with that."""
    where = f"docker-compose.yml services.{TLS_INIT}"
    directory = tls_init_dir(tls_init_script(init))
    if directory is None:
        return {}, [f"{where}: does not run `multinetctl tls init DIR`"]
    material: dict[str, Location] = {}
    problems = []
    for role in TLS_MATERIAL:
        written = init.volume_at(f"{directory}/{role}")
        if written is None or written[1]:
            problems.append(f"{where}: {directory}/{role} is not in a writable named volume: no {role} material")
        else:
            material[role] = written[0]
    if len(material) == len(TLS_MATERIAL) and overlaps(*material.values()):
        problems.append(f"{where}: the {' and '.join(TLS_MATERIAL)} material share one place ({material})")
    return material, problems


def compose_mount_problems(svc: ComposeService, material: dict[str, Location], what: str, directory: str) -> list[str]:
    """`directory` is a read-only mount of the material of svc's role."""
    role = tls_role(svc.kinds)
    wanted = material.get(role)
    if wanted is not None and svc.volume_at(directory) != (wanted, True):
        return [f"{what} is not a read-only mount of {TLS_INIT}'s {role} material ({describe(wanted)})"]
    return []  # (no such material: tls-init's problem says so)


def compose_exposure_problems(svc: ComposeService, material: dict[str, Location]) -> list[str]:
    """Only the services (catalog, IPAM, etcd) mount a volume, or a path in one, holding the services material."""
    services = material.get(tls.SERVICES)
    if services is None or tls_role(svc.kinds) == tls.SERVICES:
        return []
    return [
        f"docker-compose.yml services.{svc.name}: {describe(location)} at {target} holds the {tls.SERVICES} "
        f"material, in a {tls.NODES} container"
        for target, (location, _) in sorted(svc.named_volumes().items())
        if overlaps(location, services)
    ]


def compose_healthcheck(svc: ComposeService) -> list[str]:
    """The healthcheck's command line (CMD or CMD-SHELL form); empty if there is none."""
    test = svc.spec.get("healthcheck", {}).get("test")
    if isinstance(test, str):
        return shlex.split(interpolate(test))
    if isinstance(test, list) and test[:1] == ["CMD"]:
        return [interpolate(str(a)) for a in test[1:]]
    if isinstance(test, list) and test[:1] == ["CMD-SHELL"] and len(test) == 2:
        return shlex.split(interpolate(str(test[1])))
    return []


def compose_etcd_problems(svc: ComposeService, material: dict[str, Location]) -> list[str]:
    where = f"docker-compose.yml services.{svc.name}"
    problems = etcd_tls_problems(where, svc.argv, lambda what, d: compose_mount_problems(svc, material, what, d))
    return problems + etcdctl_problems(f"{where} healthcheck", compose_healthcheck(svc), svc.argv)


def compose_tls_problems(doc: Doc) -> list[str]:
    services = compose_services(doc)
    init = services.get(TLS_INIT)
    material: dict[str, Location] = {}
    if init is None:
        problems = [f"docker-compose.yml: no service {TLS_INIT} makes the TLS material"]
    else:
        material, problems = compose_material(init)
        if str(init.spec.get("restart")) != "no":
            where = f"docker-compose.yml services.{TLS_INIT}"
            problems.append(f'{where}: restart must be "no" for a one-shot that others wait to complete')
    for svc in services.values():
        uses_material = any(overlaps(v, m) for v, _ in svc.named_volumes().values() for m in material.values())
        if svc.name == TLS_INIT or not (svc.multinet_image or uses_material or "etcd" in svc.kinds):
            continue
        where = f"docker-compose.yml services.{svc.name}"
        depends = svc.spec.get("depends_on", {})
        condition = depends.get(TLS_INIT, {}).get("condition") if isinstance(depends, dict) else None
        if condition != "service_completed_successfully":
            problems.append(f"{where}: does not wait for {TLS_INIT} (condition: service_completed_successfully)")
        problems += compose_exposure_problems(svc, material)
        if "etcd" in svc.kinds:
            problems += compose_etcd_problems(svc, material)
        endpoints = tcp_values(svc.command) if svc.command else []
        if not endpoints:
            continue
        problems += etcd_store_problems(svc.command) if svc.command else []
        tls_dir = svc.environment().get(tls.ENV)
        if not tls_dir:
            problems.append(f"{where}: {endpoints} over TCP without {tls.ENV}")
        else:
            problems += compose_mount_problems(svc, material, f"{where}: {tls.ENV}={tls_dir}", tls_dir)
    return problems


def k8s_secret_problems(c: Container, what: str, directory: str) -> list[str]:
    """The material of c's role at `directory` in this container: that role's Secret, read-only, exactly its
    three files, readable by their owner only."""
    role = tls_role(c.kinds)
    name = TLS_MATERIAL[role]
    volume = c.mount(directory)
    secret = (volume or {}).get("secret", {})
    mount: Doc = next((m for m in c.spec.get("volumeMounts", []) if m["mountPath"] == directory), {})
    if secret.get("secretName") != name or "subPath" in mount:
        return [f"{what} is not a mount of the Secret {name} (the {role} material)"]
    problems = []
    if not mount.get("readOnly"):
        problems.append(f"{c.where}: the Secret {name} at {directory} is not mounted readOnly")
    items = secret.get("items")
    if items is not None and sorted((i["key"], i["path"]) for i in items) != sorted((f, f) for f in TLS_FILES):
        problems.append(f"{c.where}: Secret {name} items {items} are not {list(TLS_FILES)}")
    modes = [secret.get("defaultMode", 0o644), *(i["mode"] for i in items or [] if "mode" in i)]
    if any(mode & 0o077 for mode in modes):
        problems.append(f"{c.where}: Secret {name} files readable beyond their owner (modes {modes})")
    return problems


def secret_names(volume: Doc | None) -> set[str]:
    """The Secrets a pod volume shows: a `secret` volume's, a `projected` volume's secret sources."""
    if volume is None:
        return set()
    names = {(volume.get("secret") or {}).get("secretName")}
    names |= {(s.get("secret") or {}).get("name") for s in (volume.get("projected") or {}).get("sources", [])}
    return {str(n) for n in names if n}


def k8s_exposure_problems(c: Container) -> list[str]:
    """Only the services (catalog, IPAM, etcd) are given the services' Secret. Any other container mounts no
    volume showing it, takes no variable from it, and runs in no pod declaring such a volume (the kubelet would
    put its files on every node that pod runs on)."""
    if tls_role(c.kinds) == tls.SERVICES:
        return []
    problems = []
    said = f"the Secret {TLS_SERVICES} ({tls.SERVICES} material), in a {tls.NODES} container"
    for volume in c.pod["spec"].get("volumes", []):
        if TLS_SERVICES in secret_names(volume):
            problems.append(f"{c.where}: its pod declares volume {volume['name']}: {said}")
    for m in c.spec.get("volumeMounts", []):
        if TLS_SERVICES in secret_names(c.mount(m["mountPath"])):
            problems.append(f"{c.where}: mounts {m['name']} at {m['mountPath']}: {said}")
    for e in c.spec.get("env", []):
        if ((e.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name") == TLS_SERVICES:
            problems.append(f"{c.where}: env {e['name']} from {said}")
    for e in c.spec.get("envFrom", []):
        if (e.get("secretRef") or {}).get("name") == TLS_SERVICES:
            problems.append(f"{c.where}: envFrom {said}")
    return problems


def k8s_etcd_problems(c: Container) -> list[str]:
    """etcd_tls_problems on the Secret, and probes such an etcd passes: etcdctl as etcdctl_problems wants, an
    httpGet only of a plaintext --listen-metrics-urls port the kubelet reaches (it probes the pod's address, so
    not a loopback one unless hostNetwork; on the client port etcd wants a certificate the kubelet lacks), or a
    tcpSocket."""
    problems = etcd_tls_problems(c.where, c.argv, lambda what, d: k8s_secret_problems(c, what, d))
    if "readinessProbe" not in c.spec:
        problems.append(f"{c.where}: no readinessProbe")
    metrics = [urlsplit(u) for u in go_flags(c.argv).get("--listen-metrics-urls", "").split(",") if u]
    named = {p.get("name"): p["containerPort"] for p in c.spec.get("ports", [])}
    for kind in (k for k in PROBES if k in c.spec):
        probe, where = c.spec[kind], f"{c.where} {kind}"
        if "exec" in probe:
            problems += etcdctl_problems(where, [str(a) for a in probe["exec"]["command"]], c.argv)
        elif "httpGet" in probe:
            port = named.get(probe["httpGet"]["port"], probe["httpGet"]["port"])
            reachable = [
                u for u in metrics
                if u.scheme == "http" and u.port == port
                and (u.hostname not in LOOPBACK or c.pod["spec"].get("hostNetwork"))
            ]  # fmt: skip
            if not reachable or probe["httpGet"].get("scheme", "HTTP") != "HTTP":
                problems.append(f"{where}: httpGet of port {port}, not a plaintext metrics port the kubelet reaches")
        elif "tcpSocket" not in probe:
            problems.append(f"{where}: {sorted(probe)} cannot pass an etcd that requires client certificates")
    return problems


def k8s_tls_problems(objects: Sequence[Doc]) -> list[str]:
    problems: list[str] = []
    for c in k8s_containers(objects):
        problems += k8s_exposure_problems(c)
        if "etcd" in c.kinds:
            problems += k8s_etcd_problems(c)
        endpoints = tcp_values(c.command) if c.command else []
        if not endpoints:
            continue
        problems += etcd_store_problems(c.command) if c.command else []
        tls_dir = (c.env(tls.ENV) or {}).get("value")
        if not tls_dir:
            problems.append(f"{c.where}: {endpoints} over TCP without {tls.ENV}")
            continue
        problems += k8s_secret_problems(c, f"{c.where}: {tls.ENV}={tls_dir}", tls_dir)
    return problems


# -------------------------------------------------------------------------------------------------- kubernetes


@dataclass(frozen=True)
class Container:
    where: str
    namespace: str
    pod: Doc  # the pod template
    spec: Doc

    @property
    def argv(self) -> list[str]:
        return [str(a) for a in [*self.spec.get("command", []), *self.spec.get("args", [])]]

    @property
    def command(self) -> Command | None:
        if not str(self.spec.get("image", "")).startswith(IMAGE_PREFIX):
            return None
        assert "command" not in self.spec, f"{self.where}: keep the image's entrypoint (multinetctl): use args"
        return Command(self.where, tuple(self.argv))

    @property
    def kinds(self) -> set[str]:
        if "etcd" in str(self.spec.get("image", "")):
            return {"etcd"}
        return self.command.provides() if self.command else set()

    def mount(self, path: str) -> Doc | None:
        """The pod volume mounted at `path` in this container."""
        for m in self.spec.get("volumeMounts", []):
            if m["mountPath"] == path:
                volumes: list[Doc] = self.pod["spec"].get("volumes", [])
                return next((v for v in volumes if v["name"] == m["name"]), None)
        return None

    def env(self, name: str) -> Doc | None:
        return next((e for e in self.spec.get("env", []) if e["name"] == name), None)


def k8s_objects() -> dict[str, list[Doc]]:
    return {p.name: load_yaml(p) for p in sorted(K8S_DIR.glob("*.yaml")) if p.name != "kustomization.yaml"}


def k8s_containers(objects: Sequence[Doc]) -> list[Container]:
    found = []
    for obj in objects:
        if obj["kind"] not in ("Deployment", "DaemonSet", "StatefulSet"):
            continue
        template = obj["spec"]["template"]
        for key in ("initContainers", "containers"):
            for spec in template["spec"].get(key, []):
                where = f"{obj['kind']}/{obj['metadata']['name']} {key[:-1]} {spec['name']}"
                found.append(Container(where, obj["metadata"].get("namespace", ""), template, spec))
    return found


def service_backends(objects: Sequence[Doc], containers: Sequence[Container], host: str, port: int) -> list[Container]:
    """The containers a Service name (NAME, NAME.NS, NAME.NS.svc[.cluster.local]) and port lead to."""
    name, _, rest = host.partition(".")
    namespace = rest.split(".", 1)[0] or NAMESPACE
    for svc in objects:
        if svc["kind"] != "Service" or svc["metadata"]["name"] != name or svc["metadata"].get("namespace") != namespace:
            continue
        for entry in svc["spec"].get("ports", []):
            if entry["port"] != port:
                continue
            target = entry.get("targetPort", port)
            selector = svc["spec"].get("selector", {})
            return [
                c
                for c in containers
                if c.namespace == namespace
                and selector.items() <= c.pod["metadata"].get("labels", {}).items()
                and any(
                    p["containerPort"] in listen_ports(c.argv, c.command)
                    and target in (p["containerPort"], p.get("name"))
                    for p in c.spec.get("ports", [])
                )
            ]
    return []


def k8s_reach(
    objects: Sequence[Doc], containers: Sequence[Container], src: Container, addr: Address
) -> list[Container]:
    host, port = addr
    if host == "unix":
        socket_dir = str(PurePosixPath(str(port)).parent)
        volume = src.mount(socket_dir)
        return [
            c
            for c in containers
            if c.pod is src.pod and volume is not None and c.mount(socket_dir) is volume
            and port in listen_ports(c.argv, c.command)
        ]  # fmt: skip
    return service_backends(objects, containers, host, int(port))


def k8s_problems(objects: Sequence[Doc]) -> list[str]:
    containers = k8s_containers(objects)
    problems: list[str] = []
    for c in containers:
        undefined = sorted({v for a in c.argv for v in re.findall(r"\$\((\w+)\)", a) if c.env(v) is None})
        if undefined:
            problems.append(f"{c.where}: $({', '.join(undefined)}) used in args but not in env")
        cmd = c.command
        if cmd is None:
            continue
        for flag, value in cmd.options():
            kind = REFERENCES.get((cmd.program, flag))
            if kind is None or value is None:
                continue
            for addr in target_addresses(value):
                reached = k8s_reach(objects, containers, c, addr)
                if not reached:
                    problems.append(f"{c.where}: {flag} {value}: no Service/container listens at {addr}")
                elif not any(kind in r.kinds for r in reached):
                    problems.append(f"{c.where}: {flag} {value} reaches {[r.where for r in reached]}, not a {kind}")
                pod = c.pod["spec"]
                if addr[0] != "unix" and pod.get("hostNetwork") and pod.get("dnsPolicy") != "ClusterFirstWithHostNet":
                    problems.append(f"{c.where}: a hostNetwork pod needs dnsPolicy ClusterFirstWithHostNet")
        problems += k8s_node_problems(objects, containers, c, cmd)
    return problems


def host_path(volume: Doc | None) -> str | None:
    return volume.get("hostPath", {}).get("path") if volume is not None else None


def k8s_node_problems(objects: Sequence[Doc], containers: Sequence[Container], c: Container, cmd: Command) -> list[str]:
    problems: list[str] = []
    if cmd.program == "install-cni":
        for flag, host_dir in CNI_HOST_DIRS.items():
            if host_path(c.mount(cmd.value(flag) or "")) != host_dir:
                problems.append(f"{c.where}: {flag} {cmd.value(flag)} is not a hostPath mount of {host_dir}")
    if "cni" not in cmd.provides():
        return problems
    cni_socket = cmd.value("--cni-socket")
    socket_dir = str(PurePosixPath(str(cni_socket)).parent)
    if cni_socket != CNI_SOCKET or host_path(c.mount(socket_dir)) != socket_dir:
        problems.append(f"{c.where}: --cni-socket {cni_socket} must be {CNI_SOCKET}, in that host directory")
    node = cmd.value("--node")
    agents = [r for a in target_addresses(cmd.value("--agent") or "") for r in k8s_reach(objects, containers, c, a)]
    for agent in agents:
        agent_node = agent.command.value("--node") if agent.command else None
        same_source = all(
            (c.env(v) or {}).get("valueFrom") == (agent.env(v) or {}).get("valueFrom")
            for v in re.findall(r"\$\((\w+)\)", node or "")
        )
        if node is None or agent_node != node or not same_source:
            problems.append(f"{c.where}: --node {node} differs from its agent's ({agent.where}: {agent_node})")
    return problems


def k8s_object_problems(files: dict[str, list[Doc]]) -> list[str]:
    objects = [obj for docs in files.values() for obj in docs]
    problems: list[str] = []
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    if sorted(kustomization.get("resources", [])) != sorted(files):
        problems.append(f"kustomization.yaml resources {kustomization.get('resources')} != files {sorted(files)}")
    names = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objects}
    if ("Namespace", "", NAMESPACE) not in names:
        problems.append(f"no Namespace {NAMESPACE}")
    cluster_kinds = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
    for kind, namespace, name in sorted(names):
        if (kind in cluster_kinds) == bool(namespace) or (namespace and namespace != NAMESPACE):
            problems.append(f"{kind}/{name}: namespace {namespace!r}")
    for c in k8s_containers(objects):
        account = c.pod["spec"].get("serviceAccountName")
        if account and ("ServiceAccount", c.namespace, account) not in names:
            problems.append(f"{c.where}: ServiceAccount {account} is not defined")
    for svc in (o for o in objects if o["kind"] == "Service"):
        selector = svc["spec"].get("selector", {}).items()
        if not any(selector <= c.pod["metadata"].get("labels", {}).items() for c in k8s_containers(objects)):
            problems.append(f"Service/{svc['metadata']['name']} selects no pod")
    for binding in (o for o in objects if o["kind"] == "ClusterRoleBinding"):
        if ("ClusterRole", "", binding["roleRef"]["name"]) not in names:
            problems.append(f"ClusterRoleBinding/{binding['metadata']['name']}: no ClusterRole")
        for subject in binding["subjects"]:
            if ("ServiceAccount", subject.get("namespace", ""), subject["name"]) not in names:
                problems.append(f"ClusterRoleBinding/{binding['metadata']['name']}: no {subject}")
    return problems


# ---------------------------------------------------------------------------------------------- the CRD schema

SCHEMA_KEYWORDS = {"type", "required", "properties", "minimum", "maximum", "pattern", "description"}


def schema_errors(schema: Doc, value: Any, path: str = "") -> list[str]:
    """The subset of OpenAPI v3 the Network CRD uses; any other keyword fails loudly rather than being ignored."""
    unknown = set(schema) - SCHEMA_KEYWORDS
    assert not unknown, f"{path}: the test's validator does not know {unknown}"
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{path}: not an object"]
        errors = [f"{path}.{key}: required" for key in schema.get("required", []) if key not in value]
        properties = schema.get("properties")
        for key, item in value.items():
            if properties is None:
                continue
            if key not in properties:
                errors.append(f"{path}.{key}: unknown field (the API server would drop it)")
            else:
                errors += schema_errors(properties[key], item, f"{path}.{key}")
        return errors
    if kind == "integer" and (not isinstance(value, int) or isinstance(value, bool)):
        return [f"{path}: not an integer"]
    if kind == "string" and not isinstance(value, str):
        return [f"{path}: not a string"]
    if "minimum" in schema and value < schema["minimum"]:
        return [f"{path}: below {schema['minimum']}"]
    if "maximum" in schema and value > schema["maximum"]:
        return [f"{path}: above {schema['maximum']}"]
    if "pattern" in schema and not re.search(schema["pattern"], value):
        return [f"{path}: does not match {schema['pattern']}"]
    return []


def network_schema() -> Doc:
    (crd,) = load_yaml(K8S_DIR / "01-crd-networks.yaml")
    assert crd["spec"]["group"] == "projectcalico.org"
    assert crd["spec"]["names"]["kind"] == "Network"
    assert crd["spec"]["scope"] == "Cluster"  # the seed's Networks have no namespace
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v3"
    schema: Doc = version["schema"]["openAPIV3Schema"]
    return schema


# ------------------------------------------------------------------------------------------------------- tests


def all_commands() -> list[Command]:
    compose = [s.command for s in compose_services(load_yaml(COMPOSE_FILE)[0]).values()]
    objects = [obj for docs in k8s_objects().values() for obj in docs]
    k8s = [c.command for c in k8s_containers(objects)]
    return [c for c in [*compose, *k8s] if c is not None]


@pytest.mark.parametrize("cmd", all_commands(), ids=lambda c: c.where.replace(" ", ":"))
def test_command_uses_only_real_flags(cmd: Command) -> None:
    assert flag_problems(cmd) == []


def test_every_service_is_deployed_both_ways() -> None:
    compose = {c.program for c in all_commands() if c.where.startswith("docker-compose")}
    k8s = {c.program for c in all_commands() if not c.where.startswith("docker-compose")}
    for programs in (compose, k8s):
        assert {"netmgr", "ipam", "agent", "install-cni"} <= programs
    roles = {role for c in all_commands() for role in c.provides()}
    assert {"catalog", "cni", "ipam", "agent"} <= roles


def test_compose_addresses_and_sockets_agree() -> None:
    assert compose_problems(load_yaml(COMPOSE_FILE)[0]) == []


def test_kubernetes_addresses_and_sockets_agree() -> None:
    objects = [obj for docs in k8s_objects().values() for obj in docs]
    assert k8s_problems(objects) == []


def test_kubernetes_objects_are_consistent() -> None:
    assert k8s_object_problems(k8s_objects()) == []


SERVICE_CONTAINERS = {"etcd", "netmgr", "ipam-1", "ipam-2"}  # compose: the services material
NODE_CONTAINERS = {"node-agent", "node-cni", "install-cni", "multinetctl"}  # compose: the nodes material


def test_compose_uses_mutual_tls() -> None:
    doc = load_yaml(COMPOSE_FILE)[0]
    assert compose_tls_problems(doc) == []
    services = compose_services(doc)
    tcp = {s.name for s in services.values() if s.command and tcp_values(s.command)}
    assert tcp == {"netmgr", "ipam-1", "ipam-2", "node-agent", "node-cni", "install-cni", "multinetctl"}


def test_compose_gives_each_role_its_own_material() -> None:
    """tls-init's two directories are two volumes; the services get one, the node containers the other, and
    nothing else of the material (no volume holding the services material is mounted into a node container)."""
    services = compose_services(load_yaml(COMPOSE_FILE)[0])
    material, problems = compose_material(services[TLS_INIT])
    assert problems == []
    assert material == {tls.SERVICES: (TLS_SERVICES, ""), tls.NODES: (TLS_NODES, "")}
    assert {s.name for s in services.values() if tls_role(s.kinds) == tls.SERVICES} == SERVICE_CONTAINERS
    volumes = {TLS_SERVICES, TLS_NODES}
    given = {
        name: {location for location, _ in services[name].named_volumes().values() if location[0] in volumes}
        for name in SERVICE_CONTAINERS | NODE_CONTAINERS
    }
    assert given == {name: {(TLS_SERVICES, "")} for name in SERVICE_CONTAINERS} | {
        name: {(TLS_NODES, "")} for name in NODE_CONTAINERS
    }
    for name in SERVICE_CONTAINERS | NODE_CONTAINERS:
        role = tls.SERVICES if name in SERVICE_CONTAINERS else tls.NODES
        assert services[name].volume_at("/etc/multinet/tls") == ((TLS_MATERIAL[role], ""), True), name
        if services[name].command is not None:
            assert services[name].environment()[tls.ENV] == "/etc/multinet/tls", name


def test_kubernetes_uses_mutual_tls() -> None:
    objects = [obj for docs in k8s_objects().values() for obj in docs]
    assert k8s_tls_problems(objects) == []
    tcp = {c.where for c in k8s_containers(objects) if c.command and tcp_values(c.command)}
    assert len(tcp) == 5, tcp  # netmgr (catalog), ipam, and the node's install-cni, agent and netmgr (cni)


def test_kubernetes_gives_each_role_its_own_secret() -> None:
    """Each container's /etc/multinet/tls is its role's Secret; the node pods do not even declare the services'."""
    objects = [obj for docs in k8s_objects().values() for obj in docs]
    containers = k8s_containers(objects)
    given = {c.where: secret_names(c.mount("/etc/multinet/tls")) for c in containers}
    assert given == {
        "StatefulSet/multinet-etcd container etcd": {TLS_SERVICES},
        "Deployment/multinet-netmgr container netmgr": {TLS_SERVICES},
        "Deployment/multinet-ipam container ipam": {TLS_SERVICES},
        "DaemonSet/multinet-node initContainer install-cni": {TLS_NODES},
        "DaemonSet/multinet-node container agent": {TLS_NODES},
        "DaemonSet/multinet-node container netmgr": {TLS_NODES},
    }
    assert {c.where for c in containers if tls_role(c.kinds) == tls.SERVICES} == {
        where for where, names in given.items() if names == {TLS_SERVICES}
    }
    node_pods = [c.pod for c in containers if tls_role(c.kinds) == tls.NODES]
    assert [v for pod in node_pods for v in pod["spec"]["volumes"] if TLS_SERVICES in secret_names(v)] == []


def test_ipam_stores_are_etcd_over_https() -> None:
    ipams = [c for c in all_commands() if c.program == "ipam"]
    stores = [value for c in ipams for value in c.values("--store")]
    assert len(ipams) == 3 and len(stores) == 3, stores  # compose's ipam-1 and ipam-2, the Deployment
    assert all(value.startswith("etcd:https://") for value in stores), stores
    assert [p for c in ipams for p in etcd_store_problems(c)] == []


def test_compose_etcd_requires_multinet_client_certificates() -> None:
    services = compose_services(load_yaml(COMPOSE_FILE)[0])
    (etcd,) = [s for s in services.values() if "etcd" in s.kinds]
    material, _ = compose_material(services[TLS_INIT])
    assert compose_etcd_problems(etcd, material) == []
    assert etcd.spec["depends_on"][TLS_INIT] == {"condition": "service_completed_successfully"}
    assert etcd.volume_at("/etc/multinet/tls") == ((TLS_SERVICES, ""), True)
    assert go_flags(etcd.argv)["--cert-file"] == "/etc/multinet/tls/tls.crt"
    assert go_flags(compose_healthcheck(etcd)[1:])["--cert"] == "/etc/multinet/tls/tls.crt"


def test_kubernetes_etcd_requires_multinet_client_certificates() -> None:
    objects = [obj for docs in k8s_objects().values() for obj in docs]
    (etcd,) = [c for c in k8s_containers(objects) if "etcd" in c.kinds]
    assert k8s_etcd_problems(etcd) == []
    assert k8s_secret_problems(etcd, etcd.where, "/etc/multinet/tls") == []
    assert secret_names(etcd.mount("/etc/multinet/tls")) == {TLS_SERVICES}


def test_compose_tls_init_makes_the_material_once(tmp_path: Path) -> None:
    """tls-init's script, run here as compose would run it (its directory and interpreter substituted): the first
    run makes usable material for both roles (the services certificate serves, the nodes one does not; one CA), a
    second leaves it untouched and succeeds, a set missing a file of either role is replaced by a whole new one."""
    script = tls_init_script(compose_services(load_yaml(COMPOSE_FILE)[0])[TLS_INIT])
    directory = tls_init_dir(script)
    assert directory is not None
    target = tmp_path / "tls"
    script = re.sub(rf"(?<![\w./-]){re.escape(directory)}(?=/|\s|$)", shlex.quote(str(target)), script)
    script = script.replace("python3 -m multinetctl", f"{shlex.quote(sys.executable)} -m multinetctl")
    path = os.pathsep.join(p for p in (str(ROOT), str(ROOT / "proto"), os.environ.get("PYTHONPATH", "")) if p)
    env = {k: v for k, v in os.environ.items() if k != tls.ENV} | {"PYTHONPATH": path}

    def run() -> dict[str, bytes]:
        proc = subprocess.run(["sh", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{TLS_INIT} failed: {proc.stderr}"
        services, nodes = tls.load(target / tls.SERVICES), tls.load(target / tls.NODES)  # all six files, usable
        assert services.serves and not nodes.serves and services.ca == nodes.ca
        return {f"{role}/{name}": (target / role / name).read_bytes() for role in TLS_MATERIAL for name in TLS_FILES}

    first = run()
    assert run() == first
    for role, name in ((tls.NODES, tls.KEY_FILE), (tls.SERVICES, tls.CA_FILE)):
        (target / role / name).unlink()
        again = run()
        assert all(again[key] != first[key] for key in first if not key.endswith(tls.CA_FILE)), role  # new keys
        assert again[f"{tls.SERVICES}/{tls.CA_FILE}"] != first[f"{tls.SERVICES}/{tls.CA_FILE}"], role  # new CA
        first = again


def test_compose_and_kubernetes_run_the_same_image() -> None:
    compose = compose_services(load_yaml(COMPOSE_FILE)[0])
    objects = [obj for docs in k8s_objects().values() for obj in docs]
    images = {s.spec["image"] for s in compose.values() if s.command} | {
        c.spec["image"] for c in k8s_containers(objects) if c.command
    }
    assert len(images) == 1, images
    assert {s.spec["build"]["dockerfile"] for s in compose.values() if "build" in s.spec} == {"deploy/Dockerfile"}


def test_seed_networks_fit_the_crd() -> None:
    schema = network_schema()
    assert schema["properties"]["spec"]["properties"]["vni"]["maximum"] == VNI_MAX
    networks = [doc for doc in load_yaml(SEED) if doc["kind"] == "Network"]
    assert len(networks) == 2
    for network in networks:
        assert schema_errors(schema, network) == []


@pytest.mark.parametrize(
    "spec",
    [
        {"vni": 0, "range": "10.0.0.0/8"},
        {"vni": VNI_MAX + 1, "range": "10.0.0.0/8"},
        {"vni": "1234", "range": "10.0.0.0/8"},
        {"vni": 7},
        {"vni": 7, "range": "blue"},
        {"vni": 7, "range": "10.0.0.0/8", "mtu": -1},
        {"vni": 7, "range": "10.0.0.0/8", "ranges": ["10.0.0.0/8"]},
    ],
)
def test_crd_refuses_bad_networks(spec: Doc) -> None:
    network = {"apiVersion": "projectcalico.org/v3", "kind": "Network", "metadata": {"name": "x"}, "spec": spec}
    assert schema_errors(network_schema(), network) != []


def test_crd_accepts_every_documented_field() -> None:
    spec = {"vni": VNI_MAX, "range": "fd00:10::/64", "mtu": 1400, "physicalNetworkName": "uplink-a"}
    network = {"apiVersion": "projectcalico.org/v3", "kind": "Network", "metadata": {"name": "x"}, "spec": spec}
    assert schema_errors(network_schema(), network) == []


def dockerfile_copies() -> set[str]:
    """Top-level paths copied from the build context (copies from a build stage, `--from=`, are not)."""
    text = DOCKERFILE.read_text()
    return {
        src.rstrip("/").split("/")[0]
        for line in text.splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for src in line.split()[1:-1]
    }


def test_dockerfile_builds_what_the_code_needs() -> None:
    text = DOCKERFILE.read_text()
    copied = dockerfile_copies()
    imported = {
        m.group(1)
        for package in ("services", "multinetctl")
        for path in (ROOT / package).rglob("*.py")
        for m in re.finditer(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", path.read_text(), re.MULTILINE)
    }
    local = {name for name in imported if (ROOT / name).is_dir() or (ROOT / f"{name}.py").exists()}
    assert local | {"proto", "cni", "requirements.txt"} <= copied, f"not copied: {local - copied}"
    ignore = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
    assert {f"!{name}" + ("" if name.endswith(".txt") else "/") for name in copied} <= set(ignore)
    protoc = "-Iproto --python_out=proto --grpc_python_out=proto"
    assert protoc in text and protoc in (ROOT / "scripts" / "setup.sh").read_text()
    assert 'ENTRYPOINT ["python3", "-m", "multinetctl"]' in text
    assert "pip install" in text and "-r requirements.txt" in text


# --------------------------------------------------------------------- the checks above can fail (and do)


@pytest.mark.parametrize("bad", ["--cni-sokcet", "--data"])  # a typo; an abbreviation argparse would accept
def test_flag_check_catches_a_wrong_flag(bad: str) -> None:
    cmd = Command("test", ("serve", "netmgr", "--roles", "cni", bad, "/x"))
    (problem,) = flag_problems(cmd)
    assert bad in problem


def test_flag_check_catches_a_bad_value() -> None:
    assert flag_problems(Command("test", ("serve", "agent", "--driver", "dpdk"))) != []


def test_compose_check_catches_a_wrong_port_and_socket() -> None:
    doc = load_yaml(COMPOSE_FILE)[0]
    wrong_port = copy.deepcopy(doc)
    command = wrong_port["services"]["node-cni"]["command"]
    command[command.index("--catalog") + 1] = "127.0.0.1:7009"
    assert any("--catalog" in p for p in compose_problems(wrong_port))
    wrong_socket = copy.deepcopy(doc)
    command = wrong_socket["services"]["node-agent"]["command"]
    command[command.index("--listen") + 1] = "unix:/run/multinet/agent-2.sock"
    assert any("--agent" in p for p in compose_problems(wrong_socket))


def test_compose_tls_check_catches_plaintext_and_a_missing_wait() -> None:
    doc = load_yaml(COMPOSE_FILE)[0]
    no_env = copy.deepcopy(doc)
    del no_env["services"]["node-cni"]["environment"]
    assert any("node-cni" in p and tls.ENV in p for p in compose_tls_problems(no_env))
    writable = copy.deepcopy(doc)
    volumes = writable["services"]["netmgr"]["volumes"]
    volumes[:] = [v.removesuffix(":ro") for v in volumes]
    assert any("services.netmgr" in p and "read-only" in p for p in compose_tls_problems(writable))
    no_wait = copy.deepcopy(doc)
    del no_wait["services"]["install-cni"]["depends_on"][TLS_INIT]
    assert any("install-cni" in p and TLS_INIT in p for p in compose_tls_problems(no_wait))
    writes_elsewhere = copy.deepcopy(doc)
    writes_elsewhere["services"][TLS_INIT]["volumes"] = ["other:/tls"]
    assert any(TLS_INIT in p and "other" in p for p in compose_tls_problems(writes_elsewhere))


def test_kubernetes_tls_check_catches_plaintext_and_a_loose_secret() -> None:
    objects = [obj for docs in k8s_objects().values() for obj in docs]
    no_env = copy.deepcopy(objects)
    init = next(o for o in no_env if o["kind"] == "DaemonSet")["spec"]["template"]["spec"]["initContainers"][0]
    init["env"] = [e for e in init.get("env", []) if e["name"] != tls.ENV]
    assert any("install-cni" in p and tls.ENV in p for p in k8s_tls_problems(no_env))
    loose = copy.deepcopy(objects)
    volumes = next(o for o in loose if o["kind"] == "DaemonSet")["spec"]["template"]["spec"]["volumes"]
    next(v for v in volumes if "secret" in v)["secret"]["defaultMode"] = 0o644
    assert len([p for p in k8s_tls_problems(loose) if "beyond their owner" in p]) == 3
    other_secret = copy.deepcopy(objects)
    volumes = next(o for o in other_secret if o["kind"] == "Deployment")["spec"]["template"]["spec"]["volumes"]
    next(v for v in volumes if "secret" in v)["secret"]["secretName"] = "other"
    assert any(f"is not a mount of the Secret {TLS_SERVICES}" in p for p in k8s_tls_problems(other_secret))


def set_arg(argv: list[Any], prefix: str, new: str | None) -> None:
    """Replace the one item of a command list that starts with `prefix` by `new`; remove it if `new` is None."""
    (i,) = [n for n, a in enumerate(argv) if str(a).startswith(prefix)]
    if new is None:
        del argv[i]
    else:
        argv[i] = new


def compose_volumes(doc: Doc, service: str) -> list[Any]:
    """A compose service's own volume list (ipam-2 shares ipam-1's through the YAML merge key: copy it first)."""
    spec = doc["services"][service]
    spec["volumes"] = list(spec.get("volumes", []))
    volumes: list[Any] = spec["volumes"]
    return volumes


def given_material(doc: Doc, service: str, volume: str) -> None:
    """The service's material at /etc/multinet/tls becomes `volume`."""
    set_arg(compose_volumes(doc, service), "multinet-tls-", f"{volume}:/etc/multinet/tls:ro")


NODES_MATERIAL_PROBLEM = f"is not a read-only mount of {TLS_INIT}'s {tls.NODES} material"
SERVICES_MATERIAL_PROBLEM = f"is not a read-only mount of {TLS_INIT}'s {tls.SERVICES} material"
EXPOSED = f"holds the {tls.SERVICES} material, in a {tls.NODES} container"
# name -> (how the compose file is broken, [(the service, words one of its problems has)])
COMPOSE_ROLE_BREAKS: dict[str, tuple[Callable[[Doc], None], list[tuple[str, str]]]] = {
    "node-cni given the services material": (
        lambda d: given_material(d, "node-cni", TLS_SERVICES),
        [("services.node-cni", NODES_MATERIAL_PROBLEM), ("services.node-cni", EXPOSED)],
    ),
    "node-agent given it besides its own": (
        lambda d: compose_volumes(d, "node-agent").append(f"{TLS_SERVICES}:/srv/tls:ro"),
        [("services.node-agent", f"volume {TLS_SERVICES} at /srv/tls {EXPOSED}")],
    ),
    "install-cni given its key only, by subpath": (
        lambda d: compose_volumes(d, "install-cni").append(
            {
                "type": "volume",
                "source": TLS_SERVICES,
                "target": "/k",
                "read_only": True,
                "volume": {"subpath": "tls.key"},
            }
        ),
        [("services.install-cni", f"volume {TLS_SERVICES} path tls.key at /k {EXPOSED}")],
    ),
    "the CLI given the services material": (
        lambda d: given_material(d, "multinetctl", TLS_SERVICES),
        [("services.multinetctl", EXPOSED)],
    ),
    "the catalog given the nodes material": (
        lambda d: given_material(d, "netmgr", TLS_NODES),
        [("services.netmgr", SERVICES_MATERIAL_PROBLEM)],
    ),
    "ipam given the nodes material": (
        lambda d: given_material(d, "ipam-2", TLS_NODES),
        [("services.ipam-2", SERVICES_MATERIAL_PROBLEM)],
    ),
    "a node's MULTINET_TLS_DIR elsewhere": (
        lambda d: d["services"]["node-agent"].update(environment={tls.ENV: "/etc/multinet"}),
        [("services.node-agent", f"{tls.ENV}=/etc/multinet {NODES_MATERIAL_PROBLEM}")],
    ),
    "tls-init writes both roles into one volume that everyone mounts": (
        lambda d: d["services"][TLS_INIT].update(volumes=["multinet-tls:/tls"]),
        [
            ("services.netmgr", f"{SERVICES_MATERIAL_PROBLEM} (volume multinet-tls path services)"),
            ("services.node-cni", f"{NODES_MATERIAL_PROBLEM} (volume multinet-tls path nodes)"),
        ],
    ),
    "tls-init writes both roles into one place": (
        lambda d: set_arg(d["services"][TLS_INIT]["volumes"], f"{TLS_NODES}:", f"{TLS_SERVICES}:/tls/nodes"),
        [(f"services.{TLS_INIT}", "share one place")],
    ),
    "tls-init keeps the nodes material nowhere": (
        lambda d: set_arg(d["services"][TLS_INIT]["volumes"], f"{TLS_NODES}:", None),
        [(f"services.{TLS_INIT}", f"/tls/{tls.NODES} is not in a writable named volume")],
    ),
}


@pytest.mark.parametrize("name", COMPOSE_ROLE_BREAKS)
def test_compose_tls_check_keeps_the_roles_apart(name: str) -> None:
    doc = copy.deepcopy(load_yaml(COMPOSE_FILE)[0])
    assert compose_tls_problems(doc) == []
    breaks, expected = COMPOSE_ROLE_BREAKS[name]
    breaks(doc)
    problems = compose_tls_problems(doc)
    for where, words in expected:
        assert any(f"{where}:" in p and words in p for p in problems), (where, words, problems)


def one_volume(doc: Doc, subpath: bool) -> None:
    """compose's other layouts: tls-init writes DIR into one volume, multinet-tls. With `subpath`, each service
    mounts its role's directory of it at /etc/multinet/tls (compose's `volume: {subpath: ...}`, which the
    installed docker-compose refuses); without, the whole volume, and MULTINET_TLS_DIR (etcd: its flags and
    healthcheck) names /etc/multinet/tls/ROLE."""
    services = doc["services"]
    services[TLS_INIT]["volumes"] = ["multinet-tls:/tls"]
    for name, spec in services.items():
        volumes = [v for v in spec.get("volumes", []) if not str(v).startswith("multinet-tls-")]
        if name == TLS_INIT or len(volumes) == len(spec.get("volumes", [])):
            continue
        role = tls_role(ComposeService(name, spec).kinds)
        if subpath:
            mount = {"type": "volume", "source": "multinet-tls", "target": "/etc/multinet/tls", "read_only": True}
            spec["volumes"] = [*volumes, mount | {"volume": {"subpath": role}}]
            continue
        spec["volumes"] = [*volumes, "multinet-tls:/etc/multinet/tls:ro"]

        def moved(value: Any, role: str = role) -> str:
            return re.sub(r"/etc/multinet/tls(?=/|$)", f"/etc/multinet/tls/{role}", str(value))

        if "environment" in spec:
            spec["environment"] = {k: moved(v) if k == tls.ENV else v for k, v in spec["environment"].items()}
        if "etcd" in ComposeService(name, spec).kinds:
            spec["command"] = [moved(a) for a in spec["command"]]
            spec["healthcheck"] = spec["healthcheck"] | {"test": [moved(a) for a in spec["healthcheck"]["test"]]}


def test_compose_tls_check_takes_a_subpath_per_role() -> None:
    doc = copy.deepcopy(load_yaml(COMPOSE_FILE)[0])
    one_volume(doc, subpath=True)
    assert compose_tls_problems(doc) == []


def test_compose_tls_check_catches_roles_apart_by_configuration_only() -> None:
    """One volume mounted whole in every container, MULTINET_TLS_DIR naming the role's directory: each service
    uses the right material, but every node container can read the services' key."""
    doc = copy.deepcopy(load_yaml(COMPOSE_FILE)[0])
    one_volume(doc, subpath=False)
    problems = compose_tls_problems(doc)
    assert all(EXPOSED in p for p in problems), problems
    assert {p.split(":")[0].removeprefix("docker-compose.yml services.") for p in problems} == NODE_CONTAINERS


def k8s_pod_spec(objects: list[Doc], kind: str, name: str) -> Doc:
    workload = next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def node_agent(objects: list[Doc]) -> Doc:
    container: Doc = next(
        c for c in k8s_pod_spec(objects, "DaemonSet", "multinet-node")["containers"] if c["name"] == "agent"
    )
    return container


def give_agent(objects: list[Doc], volume: Doc) -> None:
    """The node pod gets `volume`, which its agent mounts at /srv/tls."""
    k8s_pod_spec(objects, "DaemonSet", "multinet-node")["volumes"].append(volume | {"name": "extra"})
    node_agent(objects)["volumeMounts"].append({"name": "extra", "mountPath": "/srv/tls", "readOnly": True})


def set_secret(objects: list[Doc], kind: str, name: str, secret: str) -> None:
    volume = next(v for v in k8s_pod_spec(objects, kind, name)["volumes"] if "secret" in v)
    volume["secret"]["secretName"] = secret


NODE_AGENT = "DaemonSet/multinet-node container agent"
SERVICES_SECRET = f"the Secret {TLS_SERVICES} ({tls.SERVICES} material), in a {tls.NODES} container"
# name -> (how the manifests are broken, [(the container, words one of its problems has)])
K8S_ROLE_BREAKS: dict[str, tuple[Callable[[list[Doc]], None], list[tuple[str, str]]]] = {
    "the node pods given the services' Secret": (
        lambda o: set_secret(o, "DaemonSet", "multinet-node", TLS_SERVICES),
        [
            (c, f"is not a mount of the Secret {TLS_NODES}")
            for c in (
                "DaemonSet/multinet-node initContainer install-cni",
                NODE_AGENT,
                "DaemonSet/multinet-node container netmgr",
            )
        ]
        + [(NODE_AGENT, f"mounts tls at /etc/multinet/tls: {SERVICES_SECRET}")],
    ),
    "the agent given it besides its own": (
        lambda o: give_agent(o, {"secret": {"secretName": TLS_SERVICES, "defaultMode": 0o400}}),
        [(NODE_AGENT, f"mounts extra at /srv/tls: {SERVICES_SECRET}")],
    ),
    "the agent given it projected": (
        lambda o: give_agent(o, {"projected": {"sources": [{"secret": {"name": TLS_SERVICES}}]}}),
        [(NODE_AGENT, f"mounts extra at /srv/tls: {SERVICES_SECRET}")],
    ),
    "the agent given its key in a variable": (
        lambda o: node_agent(o)["env"].append(
            {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": TLS_SERVICES, "key": tls.KEY_FILE}}}
        ),
        [(NODE_AGENT, f"env KEY from {SERVICES_SECRET}")],
    ),
    "the agent given all of it as variables": (
        lambda o: node_agent(o).update(envFrom=[{"secretRef": {"name": TLS_SERVICES}}]),
        [(NODE_AGENT, f"envFrom {SERVICES_SECRET}")],
    ),
    "the node pod declares it, unmounted": (
        lambda o: k8s_pod_spec(o, "DaemonSet", "multinet-node")["volumes"].append(
            {"name": "extra", "secret": {"secretName": TLS_SERVICES}}
        ),
        [(NODE_AGENT, f"its pod declares volume extra: {SERVICES_SECRET}")],
    ),
    "the catalog given the nodes' Secret": (
        lambda o: set_secret(o, "Deployment", "multinet-netmgr", TLS_NODES),
        [("Deployment/multinet-netmgr container netmgr", f"is not a mount of the Secret {TLS_SERVICES}")],
    ),
    "ipam given the nodes' Secret": (
        lambda o: set_secret(o, "Deployment", "multinet-ipam", TLS_NODES),
        [("Deployment/multinet-ipam container ipam", f"is not a mount of the Secret {TLS_SERVICES}")],
    ),
}


@pytest.mark.parametrize("name", K8S_ROLE_BREAKS)
def test_kubernetes_tls_check_keeps_the_roles_apart(name: str) -> None:
    objects = copy.deepcopy([obj for docs in k8s_objects().values() for obj in docs])
    assert k8s_tls_problems(objects) == []
    breaks, expected = K8S_ROLE_BREAKS[name]
    breaks(objects)
    problems = k8s_tls_problems(objects)
    for where, words in expected:
        assert any(p.startswith(f"{where}:") and words in p for p in problems), (where, words, problems)


def compose_etcd(doc: Doc) -> Doc:
    spec: Doc = doc["services"]["etcd"]
    return spec


# name -> (how the compose file is broken, the service and the words its problem names)
COMPOSE_ETCD_BREAKS: dict[str, tuple[Callable[[Doc], None], tuple[str, str]]] = {
    "http clients": (
        lambda d: set_arg(
            compose_etcd(d)["command"], "--listen-client-urls", "--listen-client-urls=http://0.0.0.0:2379"
        ),
        ("services.etcd", "--listen-client-urls"),
    ),
    "http advertised": (
        lambda d: set_arg(
            compose_etcd(d)["command"], "--advertise-client-urls", "--advertise-client-urls=http://etcd:2379"
        ),
        ("services.etcd", "--advertise-client-urls"),
    ),
    "no client certificates": (
        lambda d: set_arg(compose_etcd(d)["command"], "--client-cert-auth", None),
        ("services.etcd", "--client-cert-auth"),
    ),
    "its own certificate": (
        lambda d: set_arg(compose_etcd(d)["command"], "--cert-file", "--cert-file=/etcd-data/server.crt"),
        ("services.etcd", "--cert-file /etcd-data/server.crt"),
    ),
    "material from two places": (
        lambda d: set_arg(compose_etcd(d)["command"], "--key-file", "--key-file=/etcd-data/tls.key"),
        ("services.etcd", "one directory"),
    ),
    "writable material": (
        lambda d: set_arg(compose_etcd(d)["volumes"], f"{TLS_SERVICES}:", f"{TLS_SERVICES}:/etc/multinet/tls"),
        ("services.etcd", "read-only"),
    ),
    "the nodes material": (
        lambda d: set_arg(compose_etcd(d)["volumes"], f"{TLS_SERVICES}:", f"{TLS_NODES}:/etc/multinet/tls:ro"),
        ("services.etcd", SERVICES_MATERIAL_PROBLEM),
    ),
    "not waiting for tls-init": (
        lambda d: compose_etcd(d).pop("depends_on"),
        ("services.etcd", TLS_INIT),
    ),
    "healthcheck over http": (
        lambda d: set_arg(compose_etcd(d)["healthcheck"]["test"], "--endpoints", "--endpoints=http://127.0.0.1:2379"),
        ("services.etcd healthcheck", "--endpoints"),
    ),
    "healthcheck without a client certificate": (
        lambda d: set_arg(compose_etcd(d)["healthcheck"]["test"], "--cert=", None),
        ("services.etcd healthcheck", "--cert None"),
    ),
    "healthcheck skipping verification of a remote etcd": (
        lambda d: set_arg(compose_etcd(d)["healthcheck"]["test"], "--endpoints", "--endpoints=https://etcd:2379"),
        ("services.etcd healthcheck", "--insecure-skip-tls-verify"),
    ),
    "ipam on http": (
        lambda d: set_arg(d["services"]["ipam-1"]["command"], "etcd:", "etcd:http://etcd:2379"),
        ("services.ipam-1", "--store etcd:http://etcd:2379"),
    ),
}


@pytest.mark.parametrize("name", COMPOSE_ETCD_BREAKS)
def test_compose_etcd_check_catches_plaintext_and_a_failing_healthcheck(name: str) -> None:
    doc = copy.deepcopy(load_yaml(COMPOSE_FILE)[0])
    assert compose_tls_problems(doc) == []
    breaks, (where, words) = COMPOSE_ETCD_BREAKS[name]
    breaks(doc)
    problems = compose_tls_problems(doc)
    assert any(f"{where}:" in p and words in p for p in problems), problems


def k8s_etcd(objects: list[Doc]) -> Doc:
    statefulset = next(o for o in objects if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "multinet-etcd")
    container: Doc = statefulset["spec"]["template"]["spec"]["containers"][0]
    return container


def k8s_etcd_secret(objects: list[Doc]) -> Doc:
    statefulset = next(o for o in objects if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "multinet-etcd")
    volume: Doc = next(v for v in statefulset["spec"]["template"]["spec"]["volumes"] if "secret" in v)
    return volume


def metrics_probe(objects: list[Doc], metrics_url: str) -> None:
    """etcd with a plaintext metrics listener and an httpGet of its /health as readiness probe."""
    k8s_etcd(objects)["args"].append(f"--listen-metrics-urls={metrics_url}")
    k8s_etcd(objects)["readinessProbe"] = {"httpGet": {"path": "/health", "port": 2381}}


K8S_ETCD_BREAKS: dict[str, tuple[Callable[[list[Doc]], None], str]] = {
    "http clients": (
        lambda o: set_arg(k8s_etcd(o)["args"], "--listen-client-urls", "--listen-client-urls=http://0.0.0.0:2379"),
        "--listen-client-urls",
    ),
    "no client certificates": (
        lambda o: set_arg(k8s_etcd(o)["args"], "--client-cert-auth", None),
        "--client-cert-auth",
    ),
    "another Secret": (
        lambda o: k8s_etcd_secret(o)["secret"].update(secretName="etcd-tls"),
        f"is not a mount of the Secret {TLS_SERVICES}",
    ),
    "the nodes' Secret": (
        lambda o: k8s_etcd_secret(o)["secret"].update(secretName=TLS_NODES),
        f"is not a mount of the Secret {TLS_SERVICES}",
    ),
    "writable material": (
        lambda o: next(m for m in k8s_etcd(o)["volumeMounts"] if m["name"] == "tls").pop("readOnly"),
        "not mounted readOnly",
    ),
    "httpGet on the client port": (
        lambda o: k8s_etcd(o).update(readinessProbe={"httpGet": {"path": "/health", "port": "client"}}),
        "readinessProbe: httpGet of port 2379",
    ),
    "httpGet of a loopback metrics port": (
        lambda o: metrics_probe(o, "http://127.0.0.1:2381"),
        "readinessProbe: httpGet of port 2381",
    ),
    "no readiness probe": (
        lambda o: k8s_etcd(o).pop("readinessProbe"),
        "no readinessProbe",
    ),
    "probe with another key": (
        lambda o: set_arg(k8s_etcd(o)["readinessProbe"]["exec"]["command"], "--key=", "--key=/var/lib/etcd/tls.key"),
        "readinessProbe: etcdctl --key",
    ),
}


@pytest.mark.parametrize("name", K8S_ETCD_BREAKS)
def test_kubernetes_etcd_check_catches_plaintext_and_a_failing_probe(name: str) -> None:
    objects = copy.deepcopy([obj for docs in k8s_objects().values() for obj in docs])
    assert k8s_tls_problems(objects) == []
    breaks, words = K8S_ETCD_BREAKS[name]
    breaks(objects)
    problems = k8s_tls_problems(objects)
    assert any(p.startswith("StatefulSet/multinet-etcd container etcd") and words in p for p in problems), problems


def test_kubernetes_etcd_check_takes_a_reachable_metrics_probe_and_catches_ipam_on_http() -> None:
    objects = copy.deepcopy([obj for docs in k8s_objects().values() for obj in docs])
    metrics_probe(objects, "http://0.0.0.0:2381")  # plaintext /health the kubelet can reach: etcd's other way
    assert k8s_tls_problems(objects) == []
    ipam = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "multinet-ipam")
    args = ipam["spec"]["template"]["spec"]["containers"][0]["args"]
    set_arg(args, "etcd:", "etcd:http://multinet-etcd.multinet-system.svc:2379")
    assert any("multinet-ipam" in p and "--store etcd:http://" in p for p in k8s_tls_problems(objects))


def test_kubernetes_check_catches_a_wrong_target_port() -> None:
    files = k8s_objects()
    objects = copy.deepcopy([obj for docs in files.values() for obj in docs])
    ipam_service = next(o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "multinet-ipam")
    ipam_service["spec"]["ports"][0]["targetPort"] = 7001
    assert any("--ipam" in p for p in k8s_problems(objects))
