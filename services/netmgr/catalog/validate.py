"""Validation of catalog objects as they arrive (gRPC Apply). Messages name the object and the field a user
wrote in YAML (metadata.name, spec.vni, spec.range, spec.config), so `multinetctl apply` errors are actionable."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from multinet.v1 import catalog_pb2

from services.common import validate
from services.common.validate import FieldError

from ..netconf import ipam_block_of, loads_lenient, network_name_of

SUPPORTED_IPAM_TYPES = ("whereabouts", "multinet")
IpamParser = Callable[[dict[str, object], str, list[str]], catalog_pb2.IpamConfig]


class ObjectError(ValueError):
    """An invalid object: says which object and which field."""

    def __init__(self, obj: str, error: FieldError) -> None:
        super().__init__(f"{obj}: {error}")
        self.field = error.field


def network(net: catalog_pb2.Network, others: Mapping[str, catalog_pb2.Network]) -> catalog_pb2.Network:
    """A normalised copy of `net`; `others` are the networks it must not clash with (by VNI)."""
    label = f"Network {net.name!r}" if net.name else "Network"
    try:
        validate.dns1123_label("metadata.name", net.name)
        validate.vni("spec.vni", net.vni)
        validate.mtu("spec.mtu", net.mtu)
        if not net.ranges:
            raise FieldError("spec.range", "is required (a CIDR such as 192.168.0.0/16)")
        ranges = [str(validate.cidr("spec.range", r)) for r in net.ranges]
        families = [r.count(":") > 0 for r in ranges]
        if len(set(families)) != len(families):
            raise FieldError("spec.range", "at most one IPv4 and one IPv6 range")
        for other in others.values():
            if other.name != net.name and other.vni == net.vni:
                raise FieldError("spec.vni", f"{net.vni} is already used by network {other.name!r} (VNIs are unique)")
    except FieldError as exc:
        raise ObjectError(label, exc) from None
    clean = catalog_pb2.Network()
    clean.CopyFrom(net)
    del clean.ranges[:]
    clean.ranges.extend(ranges)
    clean.revision = 0
    return clean


def attachment(
    att: catalog_pb2.AttachmentDefinition,
    networks: Mapping[str, catalog_pb2.Network],
    parse_ipam: IpamParser,
) -> catalog_pb2.AttachmentDefinition:
    """A normalised copy with the network resolved and the effective IPAM configuration filled in."""
    namespace = att.namespace or "default"
    label = f"NetworkAttachmentDefinition {namespace}/{att.name}" if att.name else "NetworkAttachmentDefinition"
    try:
        validate.dns1123_subdomain("metadata.name", att.name)
        validate.dns1123_label("metadata.namespace", namespace)
        conf = loads_lenient(att.config_json, "spec.config")
        net_name = network_name_of(conf) or att.network
        if not net_name:
            raise FieldError("spec.config", "names no network: add a plugin with dataplane_options.network_name")
        net = networks.get(net_name)
        if net is None:
            known = ", ".join(sorted(networks)) or "none"
            raise FieldError(
                "spec.config.dataplane_options.network_name", f"unknown network {net_name!r} (known: {known})"
            )
        ipam = ipam_config(conf, net, parse_ipam, "spec.config.")
    except FieldError as exc:
        raise ObjectError(label, exc) from None
    clean = catalog_pb2.AttachmentDefinition(
        name=att.name, namespace=namespace, network=net_name, config_json=att.config_json
    )
    clean.ipam.CopyFrom(ipam)
    return clean


def ipam_config(
    conf: dict[str, object], net: catalog_pb2.Network, parse_ipam: IpamParser, prefix: str = ""
) -> catalog_pb2.IpamConfig:
    """The IPAM configuration of a CNI config: its ipam block (whereabouts fields) or the network's range."""
    block = ipam_block_of(conf) or {}
    ipam_type = block.get("type", "whereabouts")
    if ipam_type not in SUPPORTED_IPAM_TYPES:
        raise FieldError(
            f"{prefix}ipam.type",
            f"{ipam_type!r} is not supported: multinet allocates addresses "
            f"itself with whereabouts-compatible settings (type {' or '.join(SUPPORTED_IPAM_TYPES)})",
        )
    try:
        return parse_ipam(block, net.name, list(net.ranges))
    except FieldError as exc:
        raise FieldError(f"{prefix}{exc.field}", str(exc).split(": ", 1)[-1]) from None


def unique_names(kind: str, names: Iterable[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{kind} {name!r} appears twice in one apply")
        seen.add(name)
