"""`multinetctl lab`: a local N-node lab in network namespaces (issue 3; being built)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def lab(argv: Sequence[str]) -> int:
    print("multinetctl lab: not implemented yet", file=sys.stderr)
    return 2
