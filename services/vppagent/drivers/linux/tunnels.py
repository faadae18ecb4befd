"""Whether a device named like one of our tunnels really is that tunnel.

A network's VXLAN device is found by name (`mnvx<VNI>`). The name alone proves nothing: another program may own a
device of that name, and ours may have been made for another VTEP address (the node's underlay address changed
between two runs of the agent). A device is taken as ours only when it is a vxlan device with the network's VNI
and this node's VTEP address, carrying our ownership mark or none (the mark is set right after creation, so an agent
stopped in between leaves an unmarked device that is ours)."""

from __future__ import annotations

from ...model import OWNER_ALIAS_PREFIX
from .netlink.records import IPAddress, Link
from .plan import VxlanObj


def tunnel_problem(link: Link | None, wanted: VxlanObj, underlay: IPAddress) -> str:
    """ "" when `link` is the tunnel `wanted` from `underlay` (its MTU aside, which is repaired in place)."""
    if link is None:
        return f"tunnel {wanted.name} is missing"
    found = link.vxlan
    same_tunnel = link.kind == "vxlan" and found is not None and (found.vni, found.local) == (wanted.vni, underlay)
    if same_tunnel and (not link.alias or link.alias.startswith(OWNER_ALIAS_PREFIX)):
        return ""
    described = f"{link.kind or 'device'}"
    if found is not None:
        described += f" vni {found.vni} local {found.local}"
    if link.alias:
        described += f" alias {link.alias!r}"
    return f"{wanted.name} is a {described}, not the tunnel for VNI {wanted.vni} from {underlay}"
