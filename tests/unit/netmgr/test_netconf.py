"""Reading attachment definitions' CNI configs: the seed's form (with its trailing comma) and multinet's."""

from __future__ import annotations

import pytest

from services.common.validate import FieldError
from services.netmgr.netconf import ipam_block_of, loads_lenient, network_name_of

SEED_CONFIG = """{
  "name": "network-blue",
  "plugins": [
    {
      "type": "calico",
      "ipam": {
        "type": "whereabouts",
      }
    },
    {
      "dataplane_options": {
        "network_name": "blue"
      }
    }
  ]
}"""


def test_seed_config_with_trailing_comma() -> None:
    conf = loads_lenient(SEED_CONFIG, "spec.config")
    assert network_name_of(conf) == "blue"
    assert ipam_block_of(conf) == {"type": "whereabouts"}


def test_commas_inside_strings_are_kept() -> None:
    conf = loads_lenient('{"a": "x,}", "b": [1, 2,],}', "spec.config")
    assert conf == {"a": "x,}", "b": [1, 2]}


def test_invalid_json_names_the_field() -> None:
    with pytest.raises(FieldError) as info:
        loads_lenient("{oops", "spec.config")
    assert info.value.field == "spec.config"


def test_multinet_form() -> None:
    conf = loads_lenient('{"type": "multinet", "network": "red", "ipam": {"range": "10.0.0.0/24"}}', "c")
    assert network_name_of(conf) == "red"
    assert ipam_block_of(conf) == {"range": "10.0.0.0/24"}
