"""Failures the agent reports; each maps to one gRPC status (and from there to one CNI error code)."""


class DataplaneError(Exception):
    """Programming the dataplane failed."""


class NetnsNotFound(DataplaneError):
    """The pod's network namespace does not exist (CNI: container unknown)."""


class InterfaceExists(DataplaneError):
    """The requested interface name is already taken inside the pod's network namespace."""


class InvalidSpec(DataplaneError):
    """The request describes something the agent cannot program (bad address, unknown network...)."""
