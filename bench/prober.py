"""Runs inside a pod: for each address read on stdin, sends ICMP echo requests every 0.5 ms until one is
answered, then prints "<address> <CLOCK_MONOTONIC ns of the answer>" (or "<address> timeout")."""

import contextlib
import os
import select
import socket
import struct
import sys
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def probe(sock: socket.socket, address: str, ident: int, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    seq = 0
    while time.monotonic() < deadline:
        seq = (seq + 1) & 0xFFFF
        header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        packet = struct.pack("!BBHHH", 8, 0, checksum(header + b"multinet"), ident, seq) + b"multinet"
        with contextlib.suppress(OSError):  # no route yet
            sock.sendto(packet, (address, 0))
        ready, _, _ = select.select([sock], [], [], 0.0005)
        while ready:
            data, (source, _port) = sock.recvfrom(2048)
            icmp = data[(data[0] & 0x0F) * 4 :]
            if source == address and icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident:
                return time.monotonic_ns()
            ready, _, _ = select.select([sock], [], [], 0)
    return None


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    print("ready", flush=True)
    for line in sys.stdin:
        address = line.strip()
        answered = probe(sock, address, ident, 5.0)
        print(f"{address} {answered if answered is not None else 'timeout'}", flush=True)


if __name__ == "__main__":
    main()
