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


def test_every_agent_module_imports_first():
    """Each agent module imported before any other agent module (the others dropped from
    sys.modules in between, in an interpreter of its own): an import cycle shows only when its
    other end is not loaded yet (a bench importing agent.runtime first once found one)."""
    import subprocess
    import sys

    modules = sorted(".".join(path.relative_to(ROOT).with_suffix("").parts)
                     for path in (ROOT / "agent").rglob("*.py") if path.name not in ("__init__.py", "__main__.py"))
    script = ("import importlib, sys\n"
              "for name in sys.argv[1:]:\n"
              "    for loaded in [m for m in sys.modules if m == 'agent' or m.startswith('agent.')]:\n"
              "        del sys.modules[loaded]\n"
              "    try:\n"
              "        importlib.import_module(name)\n"
              "    except ImportError as exc:\n"
              "        print(name, exc)\n")
    done = subprocess.run([sys.executable, "-c", script, *modules], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
