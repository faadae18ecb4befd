"""What can go wrong in the IPAM core, each mapped to one gRPC status by the servicer."""

from __future__ import annotations


class IpamError(Exception):
    """Base of the core's errors; the message says what happened and what to do."""


class PoolExhausted(IpamError):
    """A range has no free address (RESOURCE_EXHAUSTED)."""


class AddressTaken(IpamError):
    """A requested (static) address is held by another owner (ALREADY_EXISTS)."""


class StoreUnavailable(IpamError):
    """The store cannot be reached or refused the write; nothing was reported as allocated (UNAVAILABLE)."""
