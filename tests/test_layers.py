"""The layers of DESIGN.md: mtb imports neither side; agent never imports server; hardware imports
neither agent, server nor mtb (it knows nothing of tickets)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_packages(package: str) -> set[str]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package, forbidden", [("mtb", {"agent", "server", "hardware"}), ("agent", {"server"}),
                                                ("hardware", {"agent", "server", "mtb"}),
                                                ("server", {"agent", "hardware"})])
def test_layers_stay_apart(package, forbidden):
    assert not imported_packages(package) & forbidden
