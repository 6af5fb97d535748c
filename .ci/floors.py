"""Print pip constraints pinning every direct dependency (and the test extra) to its floor.

``pip install -c <this output> -e '.[test]'`` then installs the lowest versions pyproject.toml
allows, so a floor set below what the code needs (cbor2 6.1 for a strict decoder option that
arrived in 6.2) fails CI instead of a user's install.
"""
from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

FLOOR = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)")
SELF = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*\[([^\]]*)\]\s*$")  # e.g. mtb-validator[postgresql]


def floors(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    extras = project.get("optional-dependencies", {})
    requirements = project["dependencies"] + extras.get("test", [])
    # The test extra's own-extra reference (mtb-validator[postgresql]) is left to pip: pinning
    # psycopg[binary] to its floor sends pip's resolver backtracking for many minutes.
    requirements = [r for r in requirements if not ((own := SELF.match(r)) and own[1] == project["name"])]
    pins = []
    for requirement in requirements:
        match = FLOOR.match(requirement)
        if match is None:
            sys.exit(f"no '>=' floor to pin in {requirement!r}: give every dependency a floor")
        pins.append(f"{match[1]}=={match[2]}")
    return pins


if __name__ == "__main__":
    print("\n".join(floors(Path(__file__).resolve().parents[1] / "pyproject.toml")))
