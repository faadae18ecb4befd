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
