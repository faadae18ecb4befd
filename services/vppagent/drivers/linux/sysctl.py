"""The few sysctls the node needs. /proc/sys/net shows the netns of the process, which is the node's."""

from __future__ import annotations

from pathlib import Path

_ROOT = Path("/proc/sys/net")


def write(path: str, value: str) -> None:
    target = _ROOT / path
    if target.read_text().strip() != value:
        target.write_text(value)


def enable_forwarding() -> None:
    write("ipv4/ip_forward", "1")
    write("ipv6/conf/all/forwarding", "1")


def prepare_host_port(ifname: str) -> None:
    """Pods' source addresses are only routable in their network's table, which the reverse-path check (it looks
    in main) cannot see: turn it off per port. Spoofing is handled by policy, not rp_filter."""
    write(f"ipv4/conf/{ifname}/rp_filter", "0")
