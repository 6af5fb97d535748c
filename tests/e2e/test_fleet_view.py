"""A running agent's state report reaches the fleet view (issue 14.5): ``GET /devices`` and
``python -m server devices`` show its version, outbox, list ages, alarms, clock skew and cache."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from .conftest import ROOT
from .test_agent_server import issue
from .test_revocation_push import until


async def test_a_running_agents_state_shows_in_the_fleet_view(server, backoffice, make_agent):
    _, barcode = await issue(backoffice)
    agent = make_agent(server.origin)
    cache = agent.engine.cache
    await agent.engine.run(cache.raise_alarm, "reader", "barcode reader disconnected")
    await agent.syncer.sync_once()
    running = asyncio.create_task(agent.run(install_signal_handlers=False))
    try:
        assert (await agent.handle_scan(barcode.encode())).event_result == 0
        await until(lambda: cache.outbox_count() == 0, "the event to go up")
        reported = agent.syncer.state.status.changes
        await until(lambda: agent.syncer.state.status.changes > reported, "a state report after the upload")
    finally:
        agent.stop.set()
        await asyncio.wait_for(running, 30)

    reply = await backoffice.get("/devices", role="admin")
    assert reply.status == 200, reply
    [device] = [d for d in reply.body if d["deviceId"] == "val1"]
    state = device["state"]
    assert state["softwareVersion"].startswith("mtb-validator ")
    assert state["outbox"] == {"depth": 0, "parked": 0}
    ages = state["listAgesSeconds"]
    assert set(ages) == {"participant-metadata", "kdks", "deny-list", "uses", "stops", "tickle-macros"}
    assert all(0 <= ages[name] < 60 for name in ("participant-metadata", "kdks", "deny-list", "uses"))
    assert [(a["kind"], a["message"]) for a in state["alarms"]] == [("reader", "barcode reader disconnected")]
    assert abs(state["clockSkewSeconds"]) < 30
    assert state["cache"] == {"ok": True, "detail": "quick_check ok"}
    assert device["silent"] is False

    shown = subprocess.run([sys.executable, "-m", "server", "devices", "--data", str(server.data_dir)],
                           capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert shown.returncode == 0, shown.stderr
    [line] = [line for line in shown.stdout.splitlines() if line.startswith("val1 ")]
    assert "mtb-validato" in line and line.rstrip().endswith("reader")
    assert "1 with alarms" in shown.stdout
