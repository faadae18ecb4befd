"""`serve SERVICE`: run one service as its own process (the same code `python -m services.SERVICE` runs)."""

from __future__ import annotations

import importlib
from collections.abc import Sequence


def serve(service: str, argv: Sequence[str]) -> int:
    module = importlib.import_module(f"services.{'vppagent' if service == 'agent' else service}.__main__")
    result: int = module.main(list(argv))
    return result
