"""The VXLAN tunnels of the vpp driver: reading them back, telling a stale one, creating or adopting one.

An L3 tunnel hands what it decapsulates to ip4-input or ip6-input through a graph arc from vxlanN-input, and is
created with that arc's index (decap_next_index). VPP numbers the arcs when they are added, so the indexes are asked
for once per VPP process and kept by the VxlanTunnels of that connection. Putting a tunnel in its network (VRF,
unnumbered, up) is the driver's: it does the same for taps."""

from __future__ import annotations

from collections.abc import Mapping

from ...errors import DataplaneError
from ..base import ReconcileReport
from . import actual, calls, plan
from .actual import ActualTunnel, Interface, Snapshot
from .api import VppApi, VppApiError, run


class VxlanTunnels:
    """The tunnels over one connection to VPP: the driver makes a new one with every connection, since the arc
    indexes learnt here belong to the VPP process at the other end."""

    def __init__(self, api: VppApi) -> None:
        self._api = api
        self._decap: dict[tuple[int, int], int] = {}  # (underlay family, inner family) -> vxlanN-input next index

    def read(
        self, want: plan.VppObjects, owned: Mapping[str, Interface], report: ReconcileReport
    ) -> dict[int, ActualTunnel] | None:
        """VPP's tunnels by sw_if_index, or None (reported) when they cannot be read: the vxlan plugin is missing.

        Not asked when the node neither wants nor owns a tunnel: a VPP without the plugin is then no problem."""
        if not want.tunnels and not any(t.startswith(plan.TUNNEL_TAG) for t in owned):
            return {}
        try:
            return actual.tunnels(self._api)
        except DataplaneError as exc:
            report.problems.append(f"VXLAN tunnels: {exc}")
            return None

    def changed(
        self,
        want: Mapping[str, plan.Tunnel],
        owned: Mapping[str, Interface],
        have: Mapping[int, ActualTunnel],
        report: ReconcileReport,
    ) -> dict[str, Interface]:
        """The wanted tunnels VPP holds with other parameters: to delete, and create again."""
        stale: dict[str, Interface] = {}
        for tag, tun in want.items():
            current = owned.get(tag)
            if current is not None and not self._matches(tun, have.get(current.sw_if_index), report):
                stale[tag] = current
        return stale

    def ensure(self, tun: plan.Tunnel, snap: Snapshot, report: ReconcileReport) -> tuple[Interface, bool]:
        """The tunnel's interface, created (or adopted) if needed; True when it was just created."""
        iface = snap.by_tag.get(tun.tag)
        if iface is not None:
            return iface, False
        sw, fresh = self._create(tun, snap, report)
        iface = Interface(sw, "", tun.tag, False, 0)
        snap.interfaces[sw] = iface
        return iface, fresh

    def _decap_index(self, underlay: int, inner: int) -> int:
        key = (underlay, inner)
        if key not in self._decap:
            node, next_node = calls.decap_arc(underlay, inner)
            # add_node_next returns the existing slot when the arc is already there: safe to ask again.
            self._decap[key] = int(run(self._api, calls.add_node_next(node, next_node)).next_index)
        return self._decap[key]

    def _matches(self, tun: plan.Tunnel, have: ActualTunnel | None, report: ReconcileReport) -> bool:
        if have is None:
            return False
        try:
            decap = self._decap_index(tun.src.version, tun.inner)
        except DataplaneError as exc:
            report.problems.append(f"tunnel {tun.tag}: {exc}")
            return True  # cannot tell: leave it alone rather than tear it down
        return (
            have.src,
            have.dst,
            have.vni,
            have.src_port,
            have.dst_port,
            have.encap_vrf_id,
            have.decap_next_index,
        ) == (
            tun.src,
            tun.dst,
            tun.vni,
            tun.udp_port,
            tun.udp_port,
            0,
            decap,
        )

    def _create(self, tun: plan.Tunnel, snap: Snapshot, report: ReconcileReport) -> tuple[int, bool]:
        call = calls.vxlan(tun, self._decap_index(tun.src.version, tun.inner), add=True)
        reply = self._api.call(call.msg, dict(call.fields))
        retval = int(reply.retval)
        if retval == calls.RV_OK:
            sw, fresh = int(reply.sw_if_index), True
            report.added += 1
        elif retval == calls.RV_TUNNEL_EXIST:
            # Created by an agent that stopped before tagging it: adopt it.
            sw, fresh = self._untagged(tun, snap), False
        else:
            raise VppApiError(call, retval)
        run(self._api, calls.tag(sw, tun.tag))  # a step of the creation (or adoption): not counted on its own
        return sw, fresh

    def _untagged(self, tun: plan.Tunnel, snap: Snapshot) -> int:
        for have in actual.tunnels(self._api).values():
            if (have.src, have.dst, have.vni, have.src_port) != (tun.src, tun.dst, tun.vni, tun.udp_port):
                continue
            other = snap.interfaces.get(have.sw_if_index)
            if other is not None and other.tag:
                raise DataplaneError(f"VXLAN tunnel {tun.dst} VNI {tun.vni} exists already, tagged {other.tag}")
            return have.sw_if_index
        raise DataplaneError(f"VPP says VXLAN tunnel to {tun.dst} VNI {tun.vni} exists but does not list it")
