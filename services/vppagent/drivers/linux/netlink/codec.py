"""Encoding and decoding of netlink messages and their attributes (TLVs).

Hand-written with `struct` because the agent's bulk path must reach tens of thousands of routes per second
(pyroute2's object model manages ~1,400/s here): a message is a few `struct.pack` calls and a bytes join."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
RTATTR = struct.Struct("=HH")  # len, type
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF


def _pad(length: int) -> int:
    return (length + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    """One attribute, padded to 4 bytes."""
    length = RTATTR.size + len(payload)
    return RTATTR.pack(length, kind) + payload + b"\0" * (_pad(length) - length)


def attr_u8(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=B", value))


def attr_u16_be(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("!H", value))


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def attr_str(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def attr_nested(kind: int, *children: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(children))


def message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), kind, flags, seq, 0) + body


@dataclass(frozen=True, slots=True)
class Message:
    """One received netlink message: header fields and the payload after the header."""

    kind: int
    flags: int
    seq: int
    payload: bytes


def split_messages(data: bytes) -> Iterator[Message]:
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, kind, flags, seq, _pid = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size:
            return
        yield Message(kind, flags, seq, data[offset + NLMSGHDR.size : offset + length])
        offset += _pad(length)


@dataclass(slots=True)
class Attrs:
    """Attributes of one message by type (the last one wins on repeats, as the kernel sends none)."""

    values: dict[int, bytes] = field(default_factory=dict)

    def get(self, kind: int) -> bytes | None:
        return self.values.get(kind)

    def u32(self, kind: int, default: int = 0) -> int:
        raw = self.values.get(kind)
        return struct.unpack_from("=I", raw)[0] if raw is not None and len(raw) >= 4 else default

    def u8(self, kind: int, default: int = 0) -> int:
        raw = self.values.get(kind)
        return raw[0] if raw else default

    def text(self, kind: int) -> str:
        raw = self.values.get(kind)
        return raw.split(b"\0", 1)[0].decode(errors="replace") if raw is not None else ""

    def nested(self, kind: int) -> Attrs:
        raw = self.values.get(kind)
        return parse_attrs(raw) if raw is not None else Attrs()


def parse_attrs(data: bytes, offset: int = 0) -> Attrs:
    values: dict[int, bytes] = {}
    while offset + RTATTR.size <= len(data):
        length, kind = RTATTR.unpack_from(data, offset)
        if length < RTATTR.size:
            break
        values[kind & NLA_TYPE_MASK] = data[offset + RTATTR.size : offset + length]
        offset += _pad(length)
    return Attrs(values)
