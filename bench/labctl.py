"""A lab for benchmarks: the tests' driver of `multinetctl lab` (tests/fixtures/lab.py: the real CLI, a private
state directory and namespace prefix, `lab down` and a sweep of the prefix afterwards), as a context manager."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "proto")]

from tests.fixtures.lab import Lab  # noqa: E402


@contextmanager
def bench_lab(nodes: int) -> Iterator[Lab]:
    lab = Lab()
    try:
        lab.up(nodes)
        yield lab
    finally:
        lab.down()
