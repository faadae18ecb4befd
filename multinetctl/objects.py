"""Kubernetes-style YAML objects → catalog protos. Accepts exactly the seed's objects:
`projectcalico.org/v3 Network` (spec.vni, spec.range) and `k8s.cni.cncf.io/v1 NetworkAttachmentDefinition`
(spec.config). Shape errors name the document and the field; values are validated by netmgr."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml
from multinet.v1 import catalog_pb2

NETWORK_KIND = ("projectcalico.org/v3", "Network")
NAD_KIND = ("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition")


class ObjectShapeError(ValueError):
    pass


def load_documents(text: str, source: str) -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ObjectShapeError(f"{source}: not valid YAML: {exc}") from None
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise ObjectShapeError(f"{source}: document {i + 1} is not a mapping")
    return docs


def to_apply_request(docs: Iterable[dict[str, Any]], source: str) -> catalog_pb2.ApplyRequest:
    request = catalog_pb2.ApplyRequest()
    for i, doc in enumerate(docs):
        where = f"{source}: document {i + 1}"
        kind = (doc.get("apiVersion"), doc.get("kind"))
        metadata = _mapping(doc.get("metadata"), f"{where}: metadata")
        spec = _mapping(doc.get("spec"), f"{where}: spec")
        name = str(metadata.get("name") or "")
        if kind == NETWORK_KIND:
            request.networks.append(_network(name, spec, f"{where} (Network {name})"))
        elif kind == NAD_KIND:
            request.attachments.append(
                _attachment(
                    name, str(metadata.get("namespace") or ""), spec, f"{where} (NetworkAttachmentDefinition {name})"
                )
            )
        else:
            raise ObjectShapeError(
                f"{where}: unsupported object {kind[0]}/{kind[1]} (expected {'/'.join(NETWORK_KIND)} or "
                f"{'/'.join(NAD_KIND)})"
            )
    return request


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ObjectShapeError(f"{where}: must be a mapping")
    return value


def _network(name: str, spec: dict[str, Any], where: str) -> catalog_pb2.Network:
    vni = spec.get("vni")
    if not isinstance(vni, int) or isinstance(vni, bool):
        raise ObjectShapeError(f"{where}: spec.vni must be an integer, got {vni!r}")
    ranges = spec.get("range", spec.get("ranges"))
    if isinstance(ranges, str):
        ranges = [ranges]
    if not isinstance(ranges, list) or not all(isinstance(r, str) for r in ranges):
        raise ObjectShapeError(f'{where}: spec.range must be a CIDR string (e.g. "192.168.0.0/16"), got {ranges!r}')
    mtu = spec.get("mtu", 0)
    if not isinstance(mtu, int) or isinstance(mtu, bool):
        raise ObjectShapeError(f"{where}: spec.mtu must be an integer")
    return catalog_pb2.Network(
        name=name, vni=vni, ranges=ranges, mtu=mtu, physical_network=str(spec.get("physicalNetworkName") or "")
    )


def _attachment(name: str, namespace: str, spec: dict[str, Any], where: str) -> catalog_pb2.AttachmentDefinition:
    config = spec.get("config")
    if not isinstance(config, str):
        raise ObjectShapeError(f"{where}: spec.config must be a string holding the CNI configuration JSON")
    return catalog_pb2.AttachmentDefinition(name=name, namespace=namespace, config_json=config)
