"""An external conformance run: schemathesis (a test extra) against a server on 127.0.0.1,
driven by the server's own ``/openapi.json``. Used by ``test_conformance.py`` (bounded, in
``make test``) and by ``bench/conformance.py`` (longer).

Every phase runs: examples, coverage, fuzzing (positive and negative data) and the stateful
phase, which follows the document's links (manifest -> ticket -> its operations; event ->
stored event). The checks are the five the server promises: no 5xx, only documented status
codes, documented content types, bodies and headers as documented.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance")
STOPS = "stop_id,stop_name,stop_lat,stop_lon,zone_id\nSA1,Central,55.6050,13.0038,A\nSA2,Harbour,55.6110,12.9950,B\n"
# What the run needs from the deployment: no limit it could trip.
SERVER_CONFIG: dict[str, Any] = {
    "rate_limit": {"requests": 10_000_000, "window_seconds": 60, "block_seconds": 1, "roles": {}},
    "login_limit": {"failures": 10_000_000, "window_seconds": 60, "block_seconds": 1},
    "connections": {"per_address": 2000, "total": 4000},
    "long_poll_max_seconds": 1,  # a generated wait=55 would outlast the run's request timeout
}


@dataclass
class Outcome:
    returncode: int
    output: str
    report: dict[str, Any]

    @property
    def failures(self) -> int:
        return int(self.report.get("summary", {}).get("failures", {}).get("total", -1)) \
            if "summary" in self.report else -1


def toml_text(token: str, admin: str, password: str, max_steps: int, scenarios: int) -> str:
    def q(text: str) -> str:
        return json.dumps(text)  # a JSON string is a valid TOML basic string

    return "\n".join([
        "[auth.openapi.bobAuthToken]", f"api_key = {q(token)}", "",
        "[auth.openapi.basicAuth]", f"username = {q(admin)}", f"password = {q(password)}", "",
        "[parameters]", f'"path.entityId" = {q(admin)}', "",
        "[phases.stateful]", f"max-steps = {max_steps}", "",
        # The document declares its links; links inferred from Location headers add a 303 path on
        # which schemathesis 4.32's state machine can stall (hypothesis InvalidDefinition).
        "[phases.stateful.inference]", 'algorithms = ["dependency-analysis"]', "",
        "[phases.stateful.generation]", f"max-examples = {scenarios}", ""])


def run(base_url: str, token: str, *, admin: str, password: str, workdir: Path, examples: int = 10,
        max_steps: int = 10, scenarios: int = 50, seed: int | None = 1, timeout_s: float = 600,
        workers: int = 1) -> Outcome:
    """One schemathesis run against ``{base_url}/openapi.json``: ``examples`` per operation and
    phase, ``scenarios`` stateful scenarios of up to ``max_steps`` linked calls; the process's
    output and its JSON report."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "schemathesis.toml"
    config.write_text(toml_text(token, admin, password, max_steps, scenarios), encoding="utf-8")
    report = workdir / "report.json"
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color", "run",
               f"{base_url}/openapi.json", "--checks", ",".join(CHECKS), "--max-examples", str(examples),
               "--workers", str(workers), "--report", "json", "--report-json-path", str(report),
               "--generation-database", "none", "--request-timeout", "30"]
    if seed is not None:
        command += ["--seed", str(seed)]
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=timeout_s)
    parsed = json.loads(report.read_text(encoding="utf-8")) if report.exists() else {}
    return Outcome(done.returncode, done.stdout + done.stderr, parsed)
