"""The vpp dataplane driver: the agent's desired state programmed into VPP through its binary API (vpp_papi)."""

from .driver import VppDriver, make_vpp_driver

__all__ = ["VppDriver", "make_vpp_driver"]
