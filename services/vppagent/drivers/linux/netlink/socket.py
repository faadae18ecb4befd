"""A blocking rtnetlink socket that sends requests in batches.

All requests of a batch go to the kernel in one sendmsg without asking for acks (the kernel answers only failures),
followed by one acked barrier; failures are matched to their request by sequence number. Errors a request
declares tolerable (EEXIST on create, ENOENT on delete) count as success, which makes every operation idempotent."""

from __future__ import annotations

import contextlib
import errno as errno_mod
import itertools
import os
import socket as socket_mod
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from . import codec
from .constants import (
    NETLINK_CAP_ACK,
    NETLINK_EXT_ACK,
    NETLINK_GET_STRICT_CHK,
    NETLINK_ROUTE,
    NLM_F_ACK,
    NLM_F_ACK_TLVS,
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSGERR_ATTR_MSG,
    SOL_NETLINK,
)
from .netns import socket_in

_BATCH = 1024  # requests per sendmsg: a batch's failures (each answered) must fit the receive buffer
# The barrier: a GETLINK for ifindex 1 (lo, present in every netns) asked to be acked; its answer is cheap.
NLMSG_NOOP_REQUEST = 18  # RTM_GETLINK
_BARRIER_BODY = struct.pack("=BxHiII", 0, 0, 1, 0, 0)
_RCVBUF = 4 * 1024 * 1024
_ERRMSG = struct.Struct("=i")


class What:
    """A request's description for humans, formatted only if an error needs it (bulk paths build thousands)."""

    __slots__ = ("_args", "_template")

    def __init__(self, template: str, *args: object) -> None:
        self._template = template
        self._args = args

    def __str__(self) -> str:
        return self._template.format(*self._args)


@dataclass(frozen=True, slots=True)
class Request:
    """One netlink request: message type, flags (REQUEST|ACK are added), body, and what it is for humans."""

    kind: int
    flags: int
    body: bytes
    what: str | What
    tolerate: frozenset[int] = frozenset()


class NetlinkError(OSError):
    def __init__(self, err: int, what: str | What, kernel_msg: str = "") -> None:
        what = str(what)
        detail = f" ({kernel_msg})" if kernel_msg else ""
        super().__init__(err, f"{what}: {os.strerror(err)}{detail}")
        self.what = what
        self.kernel_msg = kernel_msg


@dataclass(frozen=True, slots=True)
class Outcome:
    request: Request
    error: int  # 0 = success (including a tolerated errno)
    kernel_msg: str = ""

    def raise_for_error(self) -> None:
        if self.error:
            raise NetlinkError(self.error, self.request.what, self.kernel_msg)


class NetlinkSocket:
    """rtnetlink socket, optionally created inside another network namespace."""

    def __init__(self, netns_path: str | None = None) -> None:
        self._sock = socket_in(netns_path, _new_socket)
        self._seq = itertools.count(1)
        self._buf = bytearray(_RCVBUF)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> NetlinkSocket:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def execute(self, requests: Sequence[Request]) -> None:
        """Apply requests in order; raise the first failure (after all were sent)."""
        for outcome in self.execute_all(requests):
            outcome.raise_for_error()

    def execute_all(self, requests: Sequence[Request]) -> list[Outcome]:
        """Apply requests in order; report each one's outcome instead of raising."""
        outcomes: list[Outcome] = []
        for start in range(0, len(requests), _BATCH):
            outcomes.extend(self._execute_batch(requests[start : start + _BATCH]))
        return outcomes

    def _execute_batch(self, batch: Sequence[Request]) -> list[Outcome]:
        """Requests go without NLM_F_ACK — the kernel answers only failures — followed by one acked barrier: when
        its ack arrives, every request before it was processed (in order) and every failure was reported. That
        halves the messages the kernel builds and we parse; the batch size keeps a batch's worth of failures
        inside the receive buffer."""
        first = next(self._seq)
        chunks = [
            codec.message(req.kind, req.flags | NLM_F_REQUEST, first + i, req.body) for i, req in enumerate(batch)
        ]
        for _ in range(len(batch)):
            next(self._seq)
        barrier = next(self._seq)
        chunks.append(codec.message(NLMSG_NOOP_REQUEST, NLM_F_REQUEST | NLM_F_ACK, barrier, _BARRIER_BODY))
        self._sock.sendall(b"".join(chunks))
        errors: dict[int, tuple[int, str]] = {}
        done = False
        while not done:
            for msg in self._receive():
                if msg.kind != NLMSG_ERROR:
                    continue
                if msg.seq == barrier:
                    done = True
                elif first <= msg.seq < barrier:
                    errors[msg.seq] = _decode_error(msg)
        outcomes = []
        for i, req in enumerate(batch):
            err, text = errors.get(first + i, (0, ""))
            if err in req.tolerate:
                err = 0
            outcomes.append(Outcome(req, err, text if err else ""))
        return outcomes

    def query(self, kind: int, body: bytes, what: str) -> codec.Message | None:
        """A single-object GET: the object's message, or None when the kernel says it does not exist."""
        seq = next(self._seq)
        self._sock.sendall(codec.message(kind, NLM_F_REQUEST, seq, body))
        while True:
            for msg in self._receive():
                if msg.seq != seq:
                    continue
                if msg.kind != NLMSG_ERROR:
                    return msg
                err, text = _decode_error(msg)
                if err in (errno_mod.ENODEV, errno_mod.ENOENT):
                    return None
                raise NetlinkError(err, what, text)

    def dump(self, kind: int, body: bytes) -> list[codec.Message]:
        """A dump request: every object of one kind (filtered by the body where strict checking allows)."""
        for _attempt in range(5):
            seq = next(self._seq)
            self._sock.sendall(codec.message(kind, NLM_F_REQUEST | NLM_F_DUMP, seq, body))
            messages, interrupted = self._collect_dump(seq)
            if not interrupted:
                return messages
        raise NetlinkError(errno_mod.EINTR, f"dump of message type {kind} kept being interrupted")

    def _collect_dump(self, seq: int) -> tuple[list[codec.Message], bool]:
        messages: list[codec.Message] = []
        interrupted = False
        while True:
            for msg in self._receive():
                if msg.seq != seq:
                    continue
                if msg.flags & NLM_F_DUMP_INTR:
                    interrupted = True
                if msg.kind == NLMSG_DONE:
                    return messages, interrupted
                if msg.kind == NLMSG_ERROR:
                    err, text = _decode_error(msg)
                    if err:
                        raise NetlinkError(err, "dump", text)
                    continue
                messages.append(msg)

    def _receive(self) -> Iterator[codec.Message]:
        size = self._sock.recv_into(self._buf)
        return codec.split_messages(bytes(memoryview(self._buf)[:size]))


def _new_socket() -> socket_mod.socket:
    sock = socket_mod.socket(socket_mod.AF_NETLINK, socket_mod.SOCK_RAW | socket_mod.SOCK_CLOEXEC, NETLINK_ROUTE)
    try:
        sock.setsockopt(socket_mod.SOL_SOCKET, 33, _RCVBUF)  # SO_RCVBUFFORCE (root): acks of a whole batch fit
    except OSError:
        sock.setsockopt(socket_mod.SOL_SOCKET, socket_mod.SO_RCVBUF, _RCVBUF)
    sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)  # acks without a copy of the request
    sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)  # the kernel's own error text
    with contextlib.suppress(OSError):  # older kernels: dumps then ignore their filters, which is only slower
        sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
    sock.bind((0, 0))
    return sock


def _decode_error(msg: codec.Message) -> tuple[int, str]:
    (err,) = _ERRMSG.unpack_from(msg.payload)
    text = ""
    if err and msg.flags & NLM_F_ACK_TLVS:
        # payload: error, original header (16 bytes, capped), then TLVs
        text = codec.parse_attrs(msg.payload, _ERRMSG.size + codec.NLMSGHDR.size).text(NLMSGERR_ATTR_MSG)
    return -err, text


def tolerate(*errnos: int) -> frozenset[int]:
    return frozenset(errnos)


def flatten(groups: Iterable[Iterable[Request]]) -> list[Request]:
    return [req for group in groups for req in group]
