"""The architecture's one hard rule, enforced: services meet only through proto/ (the generated multinet.v1
stubs) and services/common. So each service can run as its own process, or all in one."""

from __future__ import annotations

import ast
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"


def imported_modules(path: Path) -> set[str]:
    """Absolute names of what a file imports, relative imports resolved against its package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = path.relative_to(SERVICES.parent).with_suffix("").parts[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else ()
            found.add(".".join([*base, *([node.module] if node.module else [])]))
    return found


def violations(root: Path = SERVICES) -> list[str]:
    bad = []
    for service_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        for path in service_dir.rglob("*.py"):
            for module in imported_modules(path):
                parts = module.split(".")
                if parts[0] == "services" and len(parts) > 1 and parts[1] not in (service_dir.name, "common"):
                    bad.append(f"{path.relative_to(SERVICES.parent)} imports {module}")
                if parts[0] == "multinetctl":
                    bad.append(f"{path.relative_to(SERVICES.parent)} imports the CLI ({module})")
    return bad


def common_violations() -> list[str]:
    bad = []
    for path in (SERVICES / "common").rglob("*.py"):
        for module in imported_modules(path):
            parts = module.split(".")
            if parts[0] == "services" and len(parts) > 1 and parts[1] != "common":
                bad.append(f"{path.relative_to(SERVICES.parent)} imports {module}")
    return bad


def test_services_do_not_import_each_other() -> None:
    assert violations() == []


def test_common_depends_on_no_service() -> None:
    assert common_violations() == []


def test_the_checker_sees_violations_absolute_and_relative() -> None:
    probe = SERVICES / "netmgr" / "_layering_probe.py"
    probe.write_text("from services.ipam.core import IpamCore\nfrom ..ipam import core\nfrom . import app\n")
    try:
        found = violations()
    finally:
        probe.unlink()
    assert imported_modules.__doc__
    assert sorted(found) == [
        "services/netmgr/_layering_probe.py imports services.ipam",
        "services/netmgr/_layering_probe.py imports services.ipam.core",
    ]
