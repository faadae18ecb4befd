#!/usr/bin/env python3
"""The multinet demo: the embedded control plane, the seed's two networks (blue and red, the SAME range),
real podman containers attached through the `multinet` CNI plugin, each running an HTTP server that answers
its own name. Shows overlapping addresses and isolation, then removes everything it made.

The control plane runs in its own network namespace ("node") so the demo never touches this host's routing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fixtures.podman import Podman  # noqa: E402  (the tests' private-storage podman, CNI backend)

SEED = REPO / "deploy" / "examples" / "seed-networks.yaml"
ENV = dict(os.environ, PYTHONPATH=f"{REPO}:{REPO / 'proto'}")
NODE = "multinet-demo-node"
EDGE = REPO / "deploy" / "examples" / "red-edge.yaml"
# "both" is multi-legged: eth0 on blue, eth1 on red through a second red attachment definition whose IPAM
# allocates from 192.168.100.0/24 (whereabouts fields), so each leg has its own address and replies leave
# through the interface that owns it (per-interface source routing inside the pod).
CONTAINERS = {
    "blue-1": "network-blue-conf",
    "blue-2": "network-blue-conf",
    "red-1": "network-red-conf",
    "red-2": "network-red-conf",
    # "twin" is on blue and red through the seed's attachments: both networks give it the SAME address; replies
    # follow the leg each connection came in on (conntrack mark in the pod -> that leg's routing table)
    "twin": "network-blue-conf,network-red-conf",
    "both": "network-blue-conf,network-red-edge",
}


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def run(*cmd: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, env=env or ENV, cwd=REPO)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr}{out.stdout}")
    return out.stdout


class Demo:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="multinet-demo-"))
        self.state = self.root / "state"
        self.bin_dir, self.conf_dir = self.root / "bin", self.root / "net.d"
        self.stack: subprocess.Popen[bytes] | None = None
        self.box = Podman(self.root / "podman", self.bin_dir, self.conf_dir)  # a busybox rootfs, no container yet

    def ctl(self, *args: str) -> str:
        return run(sys.executable, "-m", "multinetctl", *args, "--state-dir", str(self.state))

    def podman(self, *args: str, check: bool = True) -> str:
        return self.box.run(*args, check=check).stdout

    def start_stack(self) -> None:
        say("multinetctl up: netmgr + ipam + node agent in one process (in netns " + NODE + ")")
        run("ip", "netns", "add", NODE)
        log = (self.root / "multinet.log").open("w")
        self.stack = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                NODE,
                sys.executable,
                "-m",
                "multinetctl",
                "up",
                "--state-dir",
                str(self.state),
                "--node",
                "demo-node",
            ],
            stdout=log,
            stderr=log,
            env=ENV,
            cwd=REPO,
        )
        deadline = time.monotonic() + 30
        while not (self.state / "run" / "multinet.pid").exists():
            if time.monotonic() > deadline or self.stack.poll() is not None:
                raise RuntimeError("multinet did not start:\n" + (self.root / "multinet.log").read_text()[-3000:])
            time.sleep(0.05)
        print(f"sockets in {self.state / 'run'}")

    def apply(self) -> None:
        say(f"multinetctl apply -f {SEED.relative_to(REPO)}  (the seed's Networks and NetworkAttachmentDefinitions)")
        print(self.ctl("apply", "-f", str(SEED)), end="")
        print(f"multinetctl apply -f {EDGE.relative_to(REPO)}  (a second red attachment with its own sub-range)")
        print(self.ctl("apply", "-f", str(EDGE)), end="")
        print(self.ctl("get", "networks"), end="")
        print(self.ctl("get", "attachments"), end="")
        say("multinetctl install-cni: the `multinet` plugin and one conflist per attachment")
        print(self.ctl("install-cni", "--bin-dir", str(self.bin_dir), "--conf-dir", str(self.conf_dir)), end="")

    def start_containers(self) -> None:
        say("podman run: containers attached through the multinet CNI plugin, each serving its own name")
        for name, networks in CONTAINERS.items():
            script = f"mkdir -p /run/www && echo {name} > /run/www/index.html && exec httpd -f -p 8080 -h /run/www"
            self.podman(
                "run",
                "-d",
                "--name",
                name,
                "--network",
                networks,
                "--tmpfs",
                "/run",
                "--rootfs",
                str(self.box.rootfs),
                "/bin/sh",
                "-c",
                script,
            )
        for name, networks in CONTAINERS.items():
            addrs = self.podman("exec", name, "ip", "-o", "-4", "addr", "show").splitlines()
            shown = [f"{line.split()[1]} {line.split()[3]}" for line in addrs if " lo " not in line]
            print(f"  {name:7} {networks:38} {', '.join(shown)}")
        print(self.ctl("get", "pods"), end="")

    def address(self, name: str, network: str) -> str:
        """The address of container `name` on `network`, as the catalog recorded it."""
        for pod in json.loads(self.ctl("get", "pods", "-o", "json")):
            if pod["name"] == name:
                for iface in pod["interfaces"]:
                    if iface["network"] == network:
                        return str(iface["ips"][0]).split("/")[0]
        raise RuntimeError(f"{name} has no address on {network}")

    def ask(self, client: str, address: str) -> str:
        """An HTTP GET from inside `client` (busybox nc: the static busybox wget needs NSS, absent here)."""
        request = f'printf "GET / HTTP/1.0\\r\\nHost: {address}\\r\\n\\r\\n" | nc -w 2 {address} 8080 | tail -n 1'
        out = self.podman("exec", client, "sh", "-c", request, check=False)
        return out.strip() or "(no answer)"

    def show_isolation(self) -> bool:
        say("overlapping addresses, isolated networks")
        blue1, red1 = self.address("blue-1", "blue"), self.address("red-1", "red")
        print(f"blue-1 has {blue1} on blue; red-1 has {red1} on red" + (" — the same address" if blue1 == red1 else ""))
        both_blue, both_red = self.address("both", "blue"), self.address("both", "red")
        print(f"both has {both_blue} on blue and {both_red} on red")
        twin_blue, twin_red = self.address("twin", "blue"), self.address("twin", "red")
        print(f"twin has {twin_blue} on blue and {twin_red} on red" + (" — the same" if twin_blue == twin_red else ""))
        checks = [
            ("blue-2", blue1, "blue-1"),  # the address exists on both networks: blue reaches blue's owner
            ("red-2", red1, "red-1"),  # ... and red reaches red's owner
            ("blue-1", both_blue, "both"),  # a multi-legged container, on each of its legs
            ("red-1", both_red, "both"),
            ("blue-1", both_red, "(no answer)"),  # red's address of `both` is not reachable from blue
            ("red-1", both_blue, "(no answer)"),
            ("blue-2", twin_blue, "twin"),  # the same address on both legs of one container: both networks
            ("red-2", twin_red, "twin"),  # reach it, each through its own leg
        ]
        ok = True
        for client, address, expected in checks:
            got = self.ask(client, address)
            verdict = "ok" if got == expected else "UNEXPECTED"
            ok &= got == expected
            print(f"  {client:7} GET http://{address}:8080/ -> {got:12} (expected {expected}) {verdict}")
        print(
            "blue clients only ever reach blue servers and red clients red ones, although the addresses overlap."
            if ok
            else "isolation check FAILED"
        )
        return ok

    def show_release(self) -> None:
        say("podman rm: CNI DEL on every network, addresses back to the pool")
        reservations = json.loads(self.ctl("get", "reservations", "-o", "json"))
        print(f"reservations before: {len(reservations)}")
        self.podman("rm", "--force", "--time", "0", *CONTAINERS)
        reservations = json.loads(self.ctl("get", "reservations", "-o", "json"))
        print(f"reservations after:  {len(reservations)}")

    def teardown(self) -> None:
        say("teardown")
        self.box.cleanup()  # every container, then its storage
        if self.stack is not None and self.stack.poll() is None:
            self.stack.send_signal(signal.SIGTERM)
            try:
                self.stack.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.stack.kill()
        subprocess.run(["ip", "netns", "del", NODE], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
        print("removed the containers, the control plane, the node namespace and every file")


def main() -> int:
    if os.geteuid() != 0:
        print("the demo needs root (network namespaces, podman)", file=sys.stderr)
        return 1
    subprocess.run(["ip", "netns", "del", NODE], capture_output=True)  # a previous run killed hard
    demo = Demo()
    ok = False
    try:
        demo.start_stack()
        demo.apply()
        demo.start_containers()
        ok = demo.show_isolation()
        demo.show_release()
    finally:
        demo.teardown()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
