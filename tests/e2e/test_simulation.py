"""The demo itself (``make demo``): server process + three agents on loopback, every expected outcome."""
from __future__ import annotations

from agent.simulate import run_simulation


def test_simulation_runs_every_expected_outcome(tmp_path, capsys):
    assert run_simulation(str(tmp_path), verbose=True) == 0
    out = capsys.readouterr().out
    assert "simulation: OK" in out
    assert "!! " not in out  # no scan with an unexpected result
    for needle in ("cecilia after revocation", "-> 7", "-> 4", "-> 5", "-> 1"):
        assert needle in out
