"""CNI error codes (SPEC.md "Well-known Error Codes") and multinet's own (100+)."""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    INCOMPATIBLE_VERSION = 1
    UNSUPPORTED_FIELD = 2
    CONTAINER_UNKNOWN = 3
    INVALID_ENV = 4
    IO_FAILURE = 5
    DECODE_FAILURE = 6
    INVALID_CONFIG = 7
    TRY_AGAIN_LATER = 11
    NOT_AVAILABLE = 50  # STATUS: ADD would fail
    NOT_AVAILABLE_LIMITED = 51  # STATUS: existing containers may be affected too
    # multinet-specific
    DATAPLANE_FAILURE = 100
    INTERFACE_EXISTS = 101
    POOL_EXHAUSTED = 102
    ADDRESS_UNAVAILABLE = 103
    CHECK_FAILED = 104


class CniFailure(Exception):
    """A CNI error result: printed as {cniVersion, code, msg, details} with a non-zero exit status."""

    def __init__(self, code: Code, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details
