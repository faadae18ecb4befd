"""Shared fixtures: network namespaces (tests/fixtures/netns.py) and leak checks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.common import tls

pytest_plugins = [
    "tests.fixtures.netns",
    "tests.fixtures.traffic",
    "tests.fixtures.stack",
    "tests.fixtures.podman",
    "tests.fixtures.lab",
    "tests.fixtures.tls",
]


@pytest.fixture(autouse=True)
def _fresh_tls_material() -> Iterator[None]:
    """services.common.tls reads MULTINET_TLS_DIR once per process: every test starts and ends uncached."""
    tls.configured.cache_clear()
    yield
    tls.configured.cache_clear()
