"""The IPAM configuration of a CNI call: the config's whereabouts-style `ipam` block, or the network's range.
Parsed once per distinct block and network revision (every pod of an attachment shares it)."""

from __future__ import annotations

import json

from multinet.v1 import catalog_pb2

from services.common.validate import FieldError
from services.common.whereabouts import parse_ipam_block

from ..catalog.validate import ipam_config
from .config import NetConf
from .errors import CniFailure, Code

_CACHE_LIMIT = 1024


class IpamConfigs:
    def __init__(self) -> None:
        self._cache: dict[tuple[str, int, str], catalog_pb2.IpamConfig] = {}

    def get(self, conf: NetConf, net: catalog_pb2.Network) -> catalog_pb2.IpamConfig:
        block = conf.raw.get("ipam")
        if block is None:
            for plugin in conf.raw.get("plugins") or []:
                if isinstance(plugin, dict) and "ipam" in plugin:
                    block = plugin["ipam"]
                    break
        cache_key = (net.name, net.revision, json.dumps(block, sort_keys=True))
        cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        try:
            parsed = ipam_config({"ipam": block} if block is not None else {}, net, parse_ipam_block)
        except FieldError as exc:
            code = Code.UNSUPPORTED_FIELD if exc.field == "ipam.type" else Code.INVALID_CONFIG
            raise CniFailure(code, str(exc)) from None
        except ValueError as exc:
            raise CniFailure(Code.INVALID_CONFIG, str(exc)) from None
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[cache_key] = parsed
        return parsed
