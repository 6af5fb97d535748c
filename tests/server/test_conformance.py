"""The document matches the behaviour (issue 11.4): an external conformance run (schemathesis)
against a server started here on 127.0.0.1, with an admin token and no limit to trip, a
bounded number of examples per operation, every phase including the stateful one (the
document's links): zero failures. ``bench/conformance.py`` runs it longer."""
from __future__ import annotations

import re

import pytest

from . import conformance
from .conftest import PASSWORD

pytest.importorskip("schemathesis", reason="schemathesis is a test extra: pip install -e '.[test]'")


def test_schemathesis_finds_no_difference_between_the_document_and_the_server(make_server, tmp_path):
    d = make_server(**conformance.SERVER_CONFIG)
    (d.data_dir / "stops.txt").write_text(conformance.STOPS)
    outcome = conformance.run(d.base, d.token("admin"), admin="admin", password=PASSWORD, workdir=tmp_path / "st",
                              examples=8, max_steps=10, seed=1, timeout_s=280)
    tail = outcome.output[-6000:]
    assert outcome.report, tail
    assert outcome.report["failures"] == [] and outcome.report["errors"] == [], tail
    assert outcome.returncode == 0, tail
    assert outcome.report["operations"]["tested"] == outcome.report["operations"]["total"] >= 27
    assert {name: phase["status"] for name, phase in outcome.report["phases"].items() if name != "examples"} == {
        "coverage": "success", "fuzzing": "success", "stateful": "success"}, tail
    covered = re.search(r"API Links:\s+(\d+) covered", outcome.output)
    assert covered and int(covered.group(1)) >= 8, tail  # the stateful phase followed the declared links
    assert outcome.report["test_cases"]["generated"] > 500
