"""The external conformance run covers the B2B API too: schemathesis against
``/b2b/openapi.json`` on a server started here, authenticated with a real API key (the
published endpoints) and a real admin token (the admin API), no rate limit to trip, every phase
with a bounded number of examples, the stateful one following the document's links (employee
-> documents -> download, integration -> sync, a new company -> its keys and endpoints): the
five checks of ``tests/server/conformance.py`` find nothing.

The admin API's ``companyId`` is pinned to a second company, so the run's own company keeps its
API access and key while schemathesis turns things off and on."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone

import aiohttp
import pytest

from server.b2b.cli import run_rollover

from ..server import conformance
from .conftest import row, start_world, token

pytest.importorskip("schemathesis", reason="schemathesis is a test extra: pip install -e '.[test]'")


async def test_schemathesis_finds_no_difference_between_the_b2b_document_and_the_server(tmp_path, database_for):
    world = start_world(tmp_path / "data", database_for(), rate_limit={"enabled": False})
    try:
        async with aiohttp.ClientSession() as session:
            world.session = session
            company = world.company()
            sandbox = world.company("Sandbox for the admin API")
            assert (await company.sync([row("A1"), row("A2")])).status == 204
            await run_rollover(world.data_dir, datetime.now(timezone.utc))
        workdir = tmp_path / "st"
        workdir.mkdir()
        config = workdir / "schemathesis.toml"
        config.write_text("\n".join([
            "[auth.openapi.apiKey]", f"username = {json.dumps(company.key_id)}",
            f"password = {json.dumps(company.secret)}", "",
            "[auth.openapi.bobAuthToken]", f"api_key = {json.dumps(token(world))}", "",
            "[parameters]", f'"path.companyId" = {sandbox.id}', "",
            "[phases.stateful]", "max-steps = 8", "",
            "[phases.stateful.inference]", 'algorithms = ["dependency-analysis"]', "",
            "[phases.stateful.generation]", "max-examples = 40", ""]), encoding="utf-8")
        report = workdir / "report.json"
        done = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color", "run",
             world.base + "/openapi.json", "--checks", ",".join(conformance.CHECKS), "--max-examples", "8",
             "--generation-database", "none", "--seed", "1", "--phases", "examples,coverage,fuzzing,stateful",
             "--report", "json", "--report-json-path", str(report)],
            cwd=workdir, capture_output=True, text=True, timeout=280)
        tail = (done.stdout + done.stderr)[-6000:]
        outcome = json.loads(report.read_text(encoding="utf-8"))
        assert outcome["failures"] == [] and outcome["errors"] == [], tail
        assert done.returncode == 0, tail
        ran = {name: phase["status"] for name, phase in outcome["phases"].items()}
        assert ran["coverage"] == ran["fuzzing"] == ran["stateful"] == "success", (ran, tail)  # links followed
        assert outcome["operations"]["tested"] == outcome["operations"]["total"] >= 25, tail
        assert outcome["test_cases"]["generated"] > 300, tail
    finally:
        world.server.stop()
        world.store.db.close()
