"""A small libcni for tests: runs a conflist's plugins as libcni does (each plugin gets the list's `name` and
`cniVersion`, `runtimeConfig` holds only the capabilities it declares, ADD passes each result as the next plugin's
`prevResult`, CHECK passes the cached final result to every plugin in order, DEL runs in reverse order with it,
GC and STATUS visit every plugin), exec'ing the real executables from the real plugin directories. Plugins run in
the node's network namespace (`nsenter --net`, the mount namespace is kept), so a plugin that touches the host
side (bandwidth's ifb and qdiscs, portmap's NAT rules) does it in the node, where the pod's veth peer lives.

Also: what the node and a pod hold, to show a command left nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from multinet.v1 import catalog_pb2, catalog_pb2_grpc, ipam_pb2, ipam_pb2_grpc

from services.netmgr.netconf import loads_lenient
from tests.fixtures.netns import sh
from tests.fixtures.stack import Stack

DEBIAN_PLUGINS = Path("/usr/lib/cni")


@dataclass
class Outcome:
    status: int
    out: Any  # parsed stdout (dict), raw text, or None
    plugin: str = ""


@dataclass
class Chain:
    stack: Stack
    conflist: dict[str, Any]
    dirs: Sequence[Path] = (DEBIAN_PLUGINS,)
    cache: dict[tuple[str, str], Any] = field(default_factory=dict)  # (container, ifname) -> final ADD result

    def _exec(
        self,
        plugin: dict[str, Any],
        command: str,
        env: dict[str, str],
        extra: dict[str, Any],
    ) -> Outcome:
        conf = dict(plugin) | {"name": self.conflist["name"], "cniVersion": self.conflist["cniVersion"]} | extra
        kind = str(plugin["type"])
        binary = next((d / kind for d in (self.stack.bin_dir, *self.dirs) if (d / kind).exists()), None)
        assert binary is not None, f"plugin {kind} not found"
        path = ":".join(str(d) for d in (self.stack.bin_dir, *self.dirs))
        full = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_PATH": path} | env
        run = subprocess.run(
            ["nsenter", f"--net=/var/run/netns/{self.stack.node_ns}", str(binary)],
            input=json.dumps(conf).encode(),
            env=full,
            capture_output=True,
            timeout=60,
        )
        text = run.stdout.decode()
        try:
            parsed = json.loads(text) if text.strip() else None
        except json.JSONDecodeError:
            parsed = text
        return Outcome(run.returncode, parsed, kind)

    def _runtime_config(self, plugin: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
        caps = plugin.get("capabilities") or {}
        chosen = {k: v for k, v in given.items() if caps.get(k)}
        return {"runtimeConfig": chosen} if chosen else {}

    def add(
        self, container: str, netns: str, ifname: str, args: str = "", runtime: dict[str, Any] | None = None
    ) -> Outcome:
        env = {"CNI_CONTAINERID": container, "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_ARGS": args}
        prev: Any = None
        for plugin in self.conflist["plugins"]:
            extra = self._runtime_config(plugin, runtime or {}) | ({"prevResult": prev} if prev else {})
            outcome = self._exec(plugin, "ADD", env, extra)
            if outcome.status != 0:
                return outcome
            prev = outcome.out
        self.cache[(container, ifname)] = prev
        return Outcome(0, prev)

    def check(self, container: str, netns: str, ifname: str, args: str = "") -> Outcome:
        env = {"CNI_CONTAINERID": container, "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_ARGS": args}
        prev = self.cache[(container, ifname)]
        for plugin in self.conflist["plugins"]:
            outcome = self._exec(plugin, "CHECK", env, {"prevResult": prev})
            if outcome.status != 0:
                return outcome
        return Outcome(0, None)

    def delete(
        self, container: str, netns: str, ifname: str, args: str = "", runtime: dict[str, Any] | None = None
    ) -> Outcome:
        env = {"CNI_CONTAINERID": container, "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_ARGS": args}
        prev = self.cache.get((container, ifname))
        for plugin in reversed(self.conflist["plugins"]):
            extra = self._runtime_config(plugin, runtime or {}) | ({"prevResult": prev} if prev else {})
            outcome = self._exec(plugin, "DEL", env, extra)
            if outcome.status != 0:
                return outcome
        self.cache.pop((container, ifname), None)
        return Outcome(0, None)


def node_ports(stack: Stack) -> set[str]:
    """The node-side veths of pod interfaces."""
    return {line.split()[0].split("@")[0] for line in sh(f"ip -n {stack.node_ns} -br link").stdout.splitlines()
            if line.startswith("mn")}  # fmt: skip


def pod_links(ns: str) -> set[str]:
    return {line.split()[0].split("@")[0] for line in sh(f"ip -n {ns} -br link").stdout.splitlines()} - {"lo"}


def pod_addresses(ns: str, ifname: str) -> list[str]:
    info = json.loads(sh(f"ip -n {ns} -j addr show dev {ifname}", check=False).stdout or "[]")
    return [
        f"{a['local']}/{a['prefixlen']}"
        for link in info
        for a in link.get("addr_info", [])
        if a.get("scope") == "global"
    ]


def pod_routes(ns: str) -> list[str]:
    return [line.strip() for line in sh(f"ip -n {ns} route; ip -n {ns} -6 route").stdout.splitlines()]


class Held:
    """What IPAM and the catalog hold, asked over gRPC from the test process (milliseconds, not a CLI start)."""

    def __init__(self, stack: Stack) -> None:
        run = stack.state_dir / "run"
        self._ipam = grpc.insecure_channel(f"unix:{run / 'ipam.sock'}")
        self._netmgr = grpc.insecure_channel(f"unix:{run / 'netmgr.sock'}")

    def close(self) -> None:
        self._ipam.close()
        self._netmgr.close()

    def reservations(self, network: str = "") -> set[tuple[str, str, str, str]]:
        """(network, address, container_id, ifname)"""
        reply = ipam_pb2_grpc.IpamStub(self._ipam).ListReservations(
            ipam_pb2.ListReservationsRequest(network=network), timeout=10
        )
        return {(r.network, r.address, r.owner.container_id, r.owner.ifname) for r in reply.reservations}

    def interfaces(self, network: str = "") -> dict[tuple[str, str, str], catalog_pb2.PodInterface]:
        reply = catalog_pb2_grpc.CatalogStub(self._netmgr).ListPodInterfaces(
            catalog_pb2.ListRequest(network=network), timeout=10
        )
        return {(i.network, i.container_id, i.ifname): i for i in reply.interfaces}

    def attachment_config(self, name: str) -> dict[str, Any]:
        reply = catalog_pb2_grpc.CatalogStub(self._netmgr).ListAttachments(catalog_pb2.ListRequest(), timeout=10)
        (att,) = [a for a in reply.attachments if a.name == name]
        loaded: dict[str, Any] = loads_lenient(att.config_json, "spec.config")
        return loaded

    def revision(self) -> int:
        reply = catalog_pb2_grpc.CatalogStub(self._netmgr).ListNetworks(catalog_pb2.ListRequest(), timeout=10)
        return int(reply.revision)

    def nothing(self) -> bool:
        return not self.reservations() and not self.interfaces()
