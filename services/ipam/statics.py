"""Static requests (CNI runtimeConfig `ips`): which range each requested address belongs to.

One address per range entry, as for dynamic allocation: each request takes the first range that still has no
address and whose dynamic range holds it, else whose CIDR holds it as a host address (statics commonly live outside
range_start..range_end, or in its exclusions, precisely so dynamic allocation never hands them out)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from services.common.validate import FieldError
from services.ipam.config import Plan


def assign_statics(plan: Plan, requested: Sequence[str]) -> dict[int, int]:
    """range index → requested address; FieldError naming `requested_ips[i]` when one fits no free range entry."""
    assigned: dict[int, int] = {}
    for i, text in enumerate(requested):
        field = f"requested_ips[{i}]"
        try:
            # "10.0.0.5" or, as Multus passes them, "10.0.0.5/24"
            ip = ipaddress.ip_interface(text.strip()).ip
        except ValueError:
            raise FieldError(field, f"{text!r} is not an IPv4/IPv6 address (optionally with /prefix)") from None
        address = int(ip)
        if (ip.version, address) in {(plan.ranges[k].version, a) for k, a in assigned.items()}:
            raise FieldError(field, f"{ip} is requested twice")
        free = [r for r in plan.ranges if r.index not in assigned and r.version == ip.version]
        fitting = [r for r in free if r.allows(address)] or [r for r in free if r.host(address)]
        if not fitting:
            holders = [r for r in plan.ranges if r.version == ip.version and r.cidr_lo <= address <= r.cidr_hi]
            if not holders:
                cidrs = ", ".join(f"{r.range_id.split('|')[0]}" for r in plan.ranges)
                raise FieldError(field, f"{ip} is outside every range of this attachment ({cidrs})")
            if any(r.index not in assigned for r in holders):
                raise FieldError(field, f"{ip} is the network, broadcast or gateway address of its range")
            raise FieldError(field, f"{ip}: its range already has a requested address (one address per range)")
        assigned[fitting[0].index] = address
    return assigned
