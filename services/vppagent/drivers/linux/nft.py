"""nftables through libnftables, in-process (ctypes), inside a given network namespace: no `nft` fork per call."""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

from ...errors import DataplaneError
from .netlink.netns import entered


@cache
def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("nftables") or "libnftables.so.1"
    lib = ctypes.CDLL(name)
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    return lib


def run(netns: str, commands: str) -> None:
    """Apply `commands` (nft syntax, one transaction) in `netns`; raise DataplaneError with nft's message."""
    try:
        lib = _lib()
    except OSError as exc:
        raise DataplaneError(f"libnftables is not available ({exc}): install the nftables package") from None
    with entered(netns):  # libnftables opens its netlink socket per context: create it inside the netns
        ctx = lib.nft_ctx_new(0)
        try:
            lib.nft_ctx_buffer_error(ctx)
            status = lib.nft_run_cmd_from_buffer(ctx, commands.encode())
            error = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace").strip()
        finally:
            lib.nft_ctx_free(ctx)
    if status != 0:
        raise DataplaneError(f"nftables in {netns}: {error or 'failed'}")
