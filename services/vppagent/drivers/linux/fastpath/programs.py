"""The forwarding program, generated per network and role with the network's routing table as an immediate.

What it does, on the tcx ingress hook of a pod port (role PORT) or of the network's VXLAN device (role TUNNEL):

1. Only IPv4/IPv6 frames addressed to this device (PACKET_HOST) whose headers are in the linear data; IPv4
   without options, IPv6 without hop-by-hop options (router alert & co. are the kernel's); TTL / hop limit > 1;
   sources the kernel would refuse to forward (0/8, 127/8, multicast; IPv6 ::/8, link-local, multicast) left to
   it. Anything else: TCX_NEXT, the kernel's path as before (legacy tc on the device included: under tcx, 0 is
   TCX_PASS, which would skip a chained plugin's ingress qdisc, so no exit returns 0).
2. `bpf_fib_lookup` with DIRECT|TBID in the network's table (the fib rules are skipped: the table is the one the
   `iif` rule would select). Failure of any kind (unreachable default, no neighbour, MTU exceeded, forwarding
   off) is TCX_NEXT: the kernel then answers exactly as it always did (ICMP errors, neighbour resolution).
3. Out the device it came in on: TCX_NEXT (hairpins stay the kernel's).
4. A route without next hop (`<pod> dev <host veth>`: a local pod port) whose device is in the shaped-ports map
   (it carries someone else's qdiscs, e.g. the bandwidth plugin's tbf): TCX_NEXT, so the kernel forwards it
   through that device's egress qdisc instead of skipping it. Checked before anything in the packet changes.
5. Other local pod ports → TTL/hop limit decremented (IPv4 checksum updated incrementally, as ip_decrease_ttl
   does), MACs from the lookup, `bpf_redirect_peer`: the packet continues straight into the pod netns's receive
   path, without the veth's backlog hop (and without the host veth's egress qdisc: hence step 4).
6. A route with a next hop (`<remote pod> via inet6 fe80:.. dev mnvx<VNI> onlink`; for IPv4 the lookup then
   reports family AF_INET6 and the next hop's address, and resolves the next hop's neighbour entry: the peer
   VTEP's MAC): PORT programs rewrite as above and `bpf_redirect` to the device's egress (the VXLAN device
   encapsulates; its fdb maps that MAC to the peer's underlay address; its egress qdisc, if any, applies).
   TUNNEL programs leave it to the kernel.

Registers: r6 = ctx (survives helper calls), r7 = packet start (bounds-checked once, still valid after the
lookups: neither helper changes packet data), r8 = packet end, then the route kind (0 = local port, 1 = next
hop). The lookup's struct bpf_fib_lookup lives in the 64 bytes below the frame pointer, the map key below it.

Fast-pathed packets skip what the node netns's IP layer would do besides routing: its netfilter hooks (multinet
puts none there), rp_filter (off on pod ports anyway) and its IP counters; fragments are forwarded as they are
(as the kernel does without conntrack)."""

from __future__ import annotations

import struct
from enum import Enum

from .asm import Asm, Insn, Jmp, Reg, Size

# struct __sk_buff (the ctx) fields, by offset
SKB_PKT_TYPE = 4
SKB_PROTOCOL = 16
SKB_IFINDEX = 40
SKB_DATA = 76
SKB_DATA_END = 80
PACKET_HOST = 0

# helpers (enum bpf_func_id)
HELPER_MAP_LOOKUP_ELEM = 1
HELPER_REDIRECT = 23
HELPER_FIB_LOOKUP = 69
HELPER_REDIRECT_PEER = 155

BPF_FIB_LOOKUP_DIRECT = 1 << 0
BPF_FIB_LOOKUP_TBID = 1 << 3
BPF_FIB_LKUP_RET_SUCCESS = 0
TCX_NEXT = -1  # enum tcx_action_base: the next program, then legacy tc, then the stack

AF_INET = 2
AF_INET6 = 10

# struct bpf_fib_lookup (64 bytes) on the stack, fields by offset from its start
FIB = -64
FIB_SIZE = 64
FIB_FAMILY = 0
FIB_IFINDEX = 8
FIB_TOS = 12
FIB_SRC = 16
FIB_DST = 32
FIB_TBID = 48
FIB_SMAC = 52
FIB_DMAC = 58
SHAPED_KEY = FIB - 8  # the u32 key of the shaped-ports lookup: the egress ifindex (8-byte slot below the struct)

# frame offsets: Ethernet, then the IP header
ETH_HLEN = 14
IP4_VER_IHL = ETH_HLEN + 0
IP4_TOS = ETH_HLEN + 1
IP4_TTL = ETH_HLEN + 8
IP4_CHECK = ETH_HLEN + 10
IP4_SRC = ETH_HLEN + 12
IP4_DST = ETH_HLEN + 16
IP4_END = ETH_HLEN + 20
IP6_VERSION = ETH_HLEN + 0
IP6_NEXTHDR = ETH_HLEN + 6
IP6_HOPLIMIT = ETH_HLEN + 7
IP6_SRC = ETH_HLEN + 8
IP6_DST = ETH_HLEN + 24
IP6_END = ETH_HLEN + 40


def _native16(big_endian: int) -> int:
    """A 16-bit network-order value as a register sees it after a 16-bit load on this host."""
    value: int = struct.unpack("=H", struct.pack("!H", big_endian))[0]
    return value


ETH_P_IP = _native16(0x0800)  # ctx->protocol holds the ethertype in network order
ETH_P_IPV6 = _native16(0x86DD)
# ip_decrease_ttl: the TTL is the high byte of the header's 5th 16-bit word, so TTL - 1 adds htons(0x0100) to
# the checksum (one's complement, end-around carry); computed on the checksum as loaded (host order).
CSUM_TTL_DELTA = _native16(0x0100)


class Role(Enum):
    PORT = "p"  # ingress of a pod's host-side veth: pod → local pod or → tunnel
    TUNNEL = "t"  # ingress of a network's VXLAN device: tunnel → local pod


def program_name(role: Role, table: int) -> str:
    return f"mnfp{role.value}{table:x}"  # ≤ 13 characters: the kernel keeps 15


def forward(table: int, role: Role, shaped_map_fd: int) -> list[Insn]:
    """The program for one network and role; `shaped_map_fd`: the shaped-ports map it consults (see step 4)."""
    a = Asm()
    via = role is Role.PORT
    a.mov(Reg.R6, Reg.R1)
    a.ldx(Size.W, Reg.R2, Reg.R6, SKB_PKT_TYPE)
    a.jmp(Jmp.JNE, Reg.R2, PACKET_HOST, "pass")  # broadcast, multicast, frames for another MAC: the kernel's
    a.ldx(Size.W, Reg.R7, Reg.R6, SKB_DATA)
    a.ldx(Size.W, Reg.R8, Reg.R6, SKB_DATA_END)
    for off in range(FIB, 0, 8):  # the lookup's inputs must be zero where unused (tot_len 0: MTU checked on skb)
        a.st(Size.DW, Reg.R10, off, 0)
    a.ldx(Size.W, Reg.R2, Reg.R6, SKB_IFINDEX)  # input lookup: iif is this device (its forwarding must be on)
    a.stx(Size.W, Reg.R10, FIB + FIB_IFINDEX, Reg.R2)
    a.st(Size.W, Reg.R10, FIB + FIB_TBID, table)
    a.ldx(Size.W, Reg.R2, Reg.R6, SKB_PROTOCOL)
    a.jmp(Jmp.JEQ, Reg.R2, ETH_P_IPV6, "v6")
    a.jmp(Jmp.JNE, Reg.R2, ETH_P_IP, "pass")
    _ipv4(a, via, shaped_map_fd)
    a.ja("rewrite")
    a.label("v6")
    _ipv6(a, via, shaped_map_fd)
    a.label("rewrite")
    _rewrite_and_redirect(a, via)
    a.label("pass")
    a.mov(Reg.R0, TCX_NEXT)
    a.exit()
    return a.assemble()


def _ipv4(a: Asm, via: bool, shaped_map_fd: int) -> None:
    a.mov(Reg.R2, Reg.R7)
    a.add(Reg.R2, IP4_END)
    a.jmp(Jmp.JGT, Reg.R2, Reg.R8, "pass")  # headers not in the linear part: rare, the kernel's
    a.ldx(Size.B, Reg.R2, Reg.R7, IP4_VER_IHL)
    a.jmp(Jmp.JNE, Reg.R2, 0x45, "pass")  # IPv4 without options
    a.ldx(Size.B, Reg.R2, Reg.R7, IP4_TTL)
    a.jmp(Jmp.JLE, Reg.R2, 1, "pass")  # expires here: the kernel sends time exceeded
    a.ldx(Size.B, Reg.R2, Reg.R7, IP4_SRC)  # martian sources: the kernel drops them
    a.jmp(Jmp.JEQ, Reg.R2, 0, "pass")
    a.jmp(Jmp.JEQ, Reg.R2, 127, "pass")
    a.jmp(Jmp.JGE, Reg.R2, 224, "pass")
    a.st(Size.B, Reg.R10, FIB + FIB_FAMILY, AF_INET)
    a.ldx(Size.B, Reg.R2, Reg.R7, IP4_TOS)
    a.stx(Size.B, Reg.R10, FIB + FIB_TOS, Reg.R2)
    a.ldx(Size.W, Reg.R2, Reg.R7, IP4_SRC)
    a.stx(Size.W, Reg.R10, FIB + FIB_SRC, Reg.R2)
    a.ldx(Size.W, Reg.R2, Reg.R7, IP4_DST)
    a.stx(Size.W, Reg.R10, FIB + FIB_DST, Reg.R2)
    _lookup(a)
    # no next hop ⇔ the lookup left the IPv4 destination in place (with one, it holds the next hop's address;
    # with an IPv6 next hop the family turned AF_INET6)
    a.mov(Reg.R8, 0)
    a.ldx(Size.B, Reg.R2, Reg.R10, FIB + FIB_FAMILY)
    a.jmp(Jmp.JNE, Reg.R2, AF_INET, "v4_nexthop")
    a.ldx(Size.W, Reg.R2, Reg.R10, FIB + FIB_DST)
    a.ldx(Size.W, Reg.R3, Reg.R7, IP4_DST)
    a.jmp(Jmp.JNE, Reg.R2, Reg.R3, "v4_nexthop")
    _route_kind(a, via, shaped_map_fd, "v4_nexthop", "v4_ttl")
    a.ldx(Size.B, Reg.R2, Reg.R7, IP4_TTL)
    a.sub(Reg.R2, 1)
    a.stx(Size.B, Reg.R7, IP4_TTL, Reg.R2)
    a.ldx(Size.H, Reg.R2, Reg.R7, IP4_CHECK)
    a.add(Reg.R2, CSUM_TTL_DELTA)
    a.jmp(Jmp.JLT, Reg.R2, 0xFFFF, "v4_csum")
    a.add(Reg.R2, 1)
    a.label("v4_csum")
    a.stx(Size.H, Reg.R7, IP4_CHECK, Reg.R2)  # stores the low 16 bits


def _ipv6(a: Asm, via: bool, shaped_map_fd: int) -> None:
    a.mov(Reg.R2, Reg.R7)
    a.add(Reg.R2, IP6_END)
    a.jmp(Jmp.JGT, Reg.R2, Reg.R8, "pass")
    a.ldx(Size.B, Reg.R2, Reg.R7, IP6_VERSION)
    a.and_(Reg.R2, 0xF0)
    a.jmp(Jmp.JNE, Reg.R2, 0x60, "pass")
    a.ldx(Size.B, Reg.R2, Reg.R7, IP6_NEXTHDR)
    a.jmp(Jmp.JEQ, Reg.R2, 0, "pass")  # hop-by-hop options (router alert, jumbograms): the kernel's
    a.ldx(Size.B, Reg.R2, Reg.R7, IP6_HOPLIMIT)
    a.jmp(Jmp.JLE, Reg.R2, 1, "pass")
    a.ldx(Size.B, Reg.R2, Reg.R7, IP6_SRC)  # ip6_forward refuses these sources (security critical there too)
    a.jmp(Jmp.JEQ, Reg.R2, 0x00, "pass")  # ::, ::1, mapped/compatible
    a.jmp(Jmp.JEQ, Reg.R2, 0xFF, "pass")  # multicast
    a.jmp(Jmp.JNE, Reg.R2, 0xFE, "v6_src_ok")
    a.ldx(Size.B, Reg.R2, Reg.R7, IP6_SRC + 1)
    a.and_(Reg.R2, 0xC0)
    a.jmp(Jmp.JEQ, Reg.R2, 0x80, "pass")  # fe80::/10 link-local
    a.label("v6_src_ok")
    a.st(Size.B, Reg.R10, FIB + FIB_FAMILY, AF_INET6)
    for word in range(0, 16, 8):  # 8-byte copies: stack slots aligned, packet loads may be unaligned
        a.ldx(Size.DW, Reg.R2, Reg.R7, IP6_SRC + word)
        a.stx(Size.DW, Reg.R10, FIB + FIB_SRC + word, Reg.R2)
        a.ldx(Size.DW, Reg.R2, Reg.R7, IP6_DST + word)
        a.stx(Size.DW, Reg.R10, FIB + FIB_DST + word, Reg.R2)
    _lookup(a)
    a.mov(Reg.R8, 0)
    for word in range(0, 16, 8):  # no next hop ⇔ the destination was left in place
        a.ldx(Size.DW, Reg.R2, Reg.R10, FIB + FIB_DST + word)
        a.ldx(Size.DW, Reg.R3, Reg.R7, IP6_DST + word)
        a.jmp(Jmp.JNE, Reg.R2, Reg.R3, "v6_nexthop")
    _route_kind(a, via, shaped_map_fd, "v6_nexthop", "v6_hops")
    a.ldx(Size.B, Reg.R2, Reg.R7, IP6_HOPLIMIT)
    a.sub(Reg.R2, 1)
    a.stx(Size.B, Reg.R7, IP6_HOPLIMIT, Reg.R2)


def _route_kind(a: Asm, via: bool, shaped_map_fd: int, nexthop: str, then: str) -> None:
    """Falling through here: a route without next hop (a local port): pass if it is shaped, else on to `then`
    with r8 = 0. At `nexthop`: PORT programs go on with r8 = 1 (to the tunnel), TUNNEL programs pass."""
    _pass_if_shaped(a, shaped_map_fd)
    a.ja(then)
    a.label(nexthop)
    if not via:
        a.ja("pass")
    else:
        a.mov(Reg.R8, 1)
    a.label(then)


def _lookup(a: Asm) -> None:
    """r0 = bpf_fib_lookup(ctx, &fib, 64, DIRECT|TBID); on anything but success → pass; then the egress device
    must differ from this one."""
    a.mov(Reg.R1, Reg.R6)
    a.mov(Reg.R2, Reg.R10)
    a.add(Reg.R2, FIB)
    a.mov(Reg.R3, FIB_SIZE)
    a.mov(Reg.R4, BPF_FIB_LOOKUP_DIRECT | BPF_FIB_LOOKUP_TBID)
    a.call(HELPER_FIB_LOOKUP)
    a.jmp(Jmp.JNE, Reg.R0, BPF_FIB_LKUP_RET_SUCCESS, "pass")
    a.ldx(Size.W, Reg.R2, Reg.R10, FIB + FIB_IFINDEX)
    a.ldx(Size.W, Reg.R3, Reg.R6, SKB_IFINDEX)
    a.jmp(Jmp.JEQ, Reg.R2, Reg.R3, "pass")


def _pass_if_shaped(a: Asm, shaped_map_fd: int) -> None:
    """A local port found by the lookup that is in the shaped-ports map → pass (r1-r5 are clobbered by the call;
    r6-r8 survive it)."""
    a.ldx(Size.W, Reg.R2, Reg.R10, FIB + FIB_IFINDEX)
    a.stx(Size.W, Reg.R10, SHAPED_KEY, Reg.R2)
    a.ld_map_fd(Reg.R1, shaped_map_fd)
    a.mov(Reg.R2, Reg.R10)
    a.add(Reg.R2, SHAPED_KEY)
    a.call(HELPER_MAP_LOOKUP_ELEM)
    a.jmp(Jmp.JNE, Reg.R0, 0, "pass")  # an entry (a pointer to its value): shaped


def _rewrite_and_redirect(a: Asm, via: bool) -> None:
    """Ethernet addresses from the lookup (stack reads must be aligned to their size: dmac sits at an offset
    ≡ 2 mod 4, hence the 2+4 and 4+2 split), then the redirect chosen by the route kind in r8."""
    a.ldx(Size.H, Reg.R2, Reg.R10, FIB + FIB_DMAC)
    a.stx(Size.H, Reg.R7, 0, Reg.R2)
    a.ldx(Size.W, Reg.R2, Reg.R10, FIB + FIB_DMAC + 2)
    a.stx(Size.W, Reg.R7, 2, Reg.R2)
    a.ldx(Size.W, Reg.R2, Reg.R10, FIB + FIB_SMAC)
    a.stx(Size.W, Reg.R7, 6, Reg.R2)
    a.ldx(Size.H, Reg.R2, Reg.R10, FIB + FIB_SMAC + 4)
    a.stx(Size.H, Reg.R7, 10, Reg.R2)
    a.ldx(Size.W, Reg.R1, Reg.R10, FIB + FIB_IFINDEX)
    a.mov(Reg.R2, 0)
    if via:
        a.jmp(Jmp.JEQ, Reg.R8, 1, "nexthop")
    a.call(HELPER_REDIRECT_PEER)  # into the pod's netns: its end of the veth pair receives the packet
    a.exit()
    if via:
        a.label("nexthop")
        a.call(HELPER_REDIRECT)  # egress of the tunnel device
        a.exit()
