"""Field validation shared by every service edge. Each failure names the field and says what is allowed."""

from __future__ import annotations

import ipaddress
import re

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
VNI_MAX = 16_777_215


class FieldError(ValueError):
    """A value that is not allowed; `field` is the path a user would write (e.g. "spec.vni")."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def dns1123_label(field: str, value: str) -> str:
    if not value:
        raise FieldError(field, "is required")
    if len(value) > 63 or not _DNS1123_LABEL.match(value):
        raise FieldError(
            field,
            f"{value!r} is not a DNS-1123 label (lower-case letters, digits and '-', starting and ending "
            "with a letter or digit, at most 63 characters)",
        )
    return value


def dns1123_subdomain(field: str, value: str) -> str:
    if not value:
        raise FieldError(field, "is required")
    if len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value):
        raise FieldError(
            field,
            f"{value!r} is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', at most 253 characters)",
        )
    return value


def vni(field: str, value: int) -> int:
    if not 1 <= value <= VNI_MAX:
        raise FieldError(field, f"must be between 1 and {VNI_MAX}, got {value}")
    return value


def cidr(field: str, value: str) -> IPNetwork:
    """A network in CIDR form; host bits must be zero (192.168.0.0/16, not 192.168.1.1/16)."""
    if not isinstance(value, str) or "/" not in value:
        raise FieldError(field, f"{value!r} is not a CIDR (expected e.g. 192.168.0.0/16 or fd00::/64)")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise FieldError(field, f"{value!r} is not a valid IPv4/IPv6 CIDR ({exc})") from None


def address(field: str, value: str) -> IPAddress:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise FieldError(field, f"{value!r} is not an IPv4 or IPv6 address") from None


def interface(field: str, value: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    try:
        return ipaddress.ip_interface(value)
    except ValueError:
        raise FieldError(field, f"{value!r} is not an address with prefix (e.g. 10.0.0.5/24)") from None


def mtu(field: str, value: int) -> int:
    if value and not 576 <= value <= 65535:
        raise FieldError(field, f"must be between 576 and 65535 (or 0 for automatic), got {value}")
    return value


# Identifiers every edge checks the same way (CNI env, CNI config, gRPC fields); each edge wraps the problem in
# its own error (a CNI code, a FieldError, a gRPC status).
MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
IB_HWADDR = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){19}$")  # IP-over-InfiniBand (RFC 4391), 20 bytes
_CONTAINER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")
_IFNAME_FORBIDDEN = re.compile(r"[/:\s]")


def ifname_problem(value: str) -> str | None:
    """Linux interface names: 1..15 bytes, not '.' or '..', no '/', ':' or whitespace."""
    if not value:
        return "is empty"
    if len(value.encode()) > 15:
        return "is longer than 15 bytes"
    if value in (".", ".."):
        return "cannot be '.' or '..'"
    if _IFNAME_FORBIDDEN.search(value):
        return "contains '/', ':' or whitespace"
    return None


def container_id_problem(value: str) -> str | None:
    """CNI SPEC: starts with a letter or digit, then letters, digits, '_', '.' or '-' (here: at most 255)."""
    if not _CONTAINER_ID.match(value):
        return "must start with a letter or digit, followed by letters, digits, '_', '.' or '-' (255 at most)"
    return None


def unicast_mac_problem(value: str) -> str | None:
    if not MAC.match(value):
        return "is not a MAC address (aa:bb:cc:dd:ee:ff)"
    if int(value[:2], 16) & 1:
        return "is a multicast address"
    return None
