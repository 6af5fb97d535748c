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


def test_every_agent_module_imports_on_its_own():
    """Each module first in a fresh interpreter: an import cycle shows only when the cycle's
    other end is not loaded yet (a bench importing agent.runtime first once found one)."""
    import subprocess
    import sys

    modules = sorted(".".join(path.relative_to(ROOT).with_suffix("").parts)
                     for path in (ROOT / "agent").rglob("*.py") if path.name not in ("__init__.py", "__main__.py"))
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    runs = {name: subprocess.Popen([sys.executable, "-c", script, name], cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE) for name in modules}
    failed = {name: run.communicate(timeout=120)[1].decode()[-300:] for name, run in runs.items()}
    assert not {name: error for name, error in failed.items() if runs[name].returncode}
