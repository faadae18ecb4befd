"""Reading CNI network configurations the way attachment definitions write them.

Used for NetworkAttachmentDefinition `spec.config` (catalog) and for the configuration a runtime passes on stdin
(CNI path). Both may be a single plugin or a conflist (`plugins: [...]`); the network is named by
`dataplane_options.network_name` (the seed's Calico/VPP form) or `network` (multinet's own key) in any plugin."""

from __future__ import annotations

import json
from typing import Any

from services.common.validate import FieldError

JsonObject = dict[str, Any]


def loads_lenient(text: str, field: str) -> JsonObject:
    """JSON object from `text`; a trailing comma before } or ] is tolerated (the seed's slides have one)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        try:
            value = json.loads(_drop_trailing_commas(text))
        except json.JSONDecodeError as exc:
            raise FieldError(field, f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(value, dict):
        raise FieldError(field, "must be a JSON object")
    return value


def _drop_trailing_commas(text: str) -> str:
    out: list[str] = []
    in_string = escaped = False
    pending_comma = -1
    for ch in text:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch in "}]" and pending_comma >= 0:
            del out[pending_comma]
        if not ch.isspace():
            pending_comma = -1
        if ch == '"':
            in_string = True
        out.append(ch)
        if ch == ",":
            pending_comma = len(out) - 1
    return "".join(out)


def plugins_of(conf: JsonObject) -> list[JsonObject]:
    """The plugin entries: `plugins` of a conflist, or the config itself."""
    plugins = conf.get("plugins")
    if plugins is None:
        return [conf]
    if not isinstance(plugins, list) or not all(isinstance(p, dict) for p in plugins):
        raise FieldError("plugins", "must be a list of objects")
    return list(plugins)


def network_name_of(conf: JsonObject) -> str | None:
    for plugin in [conf, *plugins_of(conf)]:
        options = plugin.get("dataplane_options")
        if isinstance(options, dict) and isinstance(options.get("network_name"), str):
            return str(options["network_name"])
        if isinstance(plugin.get("network"), str):
            return str(plugin["network"])
    return None


def ipam_block_of(conf: JsonObject) -> JsonObject | None:
    for plugin in plugins_of(conf):
        ipam = plugin.get("ipam")
        if ipam is not None:
            if not isinstance(ipam, dict):
                raise FieldError("ipam", "must be a JSON object")
            return ipam
    return None
