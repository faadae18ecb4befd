"""The few sysctls the node needs. /proc/sys/net shows the netns of the process, which is the node's."""

from __future__ import annotations

import os
import re
from pathlib import Path

_ROOT = Path("/proc/sys/net")
TUNNEL_RPS_ENV = "MULTINET_TUNNEL_RPS"
_MASK = re.compile(r"[0-9a-fA-F]{1,8}(,[0-9a-fA-F]{8})*")


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


def tunnel_rps_mask(value: str | None = None) -> str | None:
    """The receive packet steering the agent gives its tunnel devices, from MULTINET_TUNNEL_RPS: `off` (the
    default, the kernel's own: the inner packet is processed on the CPU that decapsulated it, which the NIC's
    receive-side scaling already chose per flow), `all` (every CPU: for underlays with fewer receive queues
    than cores), or a mask in the sysfs form (`3`, `ff,ffffffff`). None for off; ValueError for anything else.
    Off by default because steering adds a cross-CPU hand-off per packet where the NIC already spread the flows;
    the lab on 2 cores cannot measure the trade-off for a real machine (bench/RESULTS.md, issue 3)."""
    raw = (os.environ.get(TUNNEL_RPS_ENV, "off") if value is None else value).strip().lower()
    if raw in ("", "off", "0"):
        return None
    if raw == "all":
        return cpu_mask(os.cpu_count() or 1)
    if _MASK.fullmatch(raw):
        return None if int(raw.replace(",", ""), 16) == 0 else raw
    raise ValueError(f"{TUNNEL_RPS_ENV}={raw!r}: expected off, all or a CPU mask such as 3 or ff,ffffffff")


def steer_receive(ifname: str, mask: str) -> bool:
    """Receive packet steering over `mask` ("0": none) for a tunnel device (see tunnel_rps_mask), written only
    where it differs. False when not applied. Best effort: /sys must show the node's netns (as under
    `ip netns exec`)."""
    want = int(mask.replace(",", ""), 16)
    queues = list(Path(f"/sys/class/net/{ifname}/queues").glob("rx-*"))
    try:
        for queue in queues:
            current = queue / "rps_cpus"
            if int(current.read_text().strip().replace(",", ""), 16) != want:
                current.write_text(mask)
    except (OSError, ValueError):
        return False
    return bool(queues)


def cpu_mask(count: int) -> str:
    """The sysfs form: 32-bit hex groups, most significant first, comma-separated."""
    value = (1 << count) - 1
    groups = []
    while True:
        groups.append(f"{value & 0xFFFFFFFF:08x}")
        value >>= 32
        if not value:
            break
    return ",".join(reversed(groups))
