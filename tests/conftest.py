"""Shared fixtures: network namespaces (tests/fixtures/netns.py) and leak checks."""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures.netns",
    "tests.fixtures.traffic",
    "tests.fixtures.stack",
    "tests.fixtures.podman",
    "tests.fixtures.lab",
]
