"""Passback and travel-speed fraud across devices (issue 14.4): real agents against a real
server on 127.0.0.1, each learning of the others' acceptances from the server's uses feed."""
from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path

from agent.clock import ClockWatch
from mtb.timeutil import utcnow
from server import cli

from ..server.conftest import PASSWORD
from .test_agent_server import issue
from .test_revocation_push import until

PLATFORM = (59.34290, 18.04970)  # Odenplan
FAR = (59.79, 18.04970)  # 50 km north of it
STOPS = "stop_id,stop_name,stop_lat,stop_lon,zone_id,location_type\nODP,Odenplan,59.34290,18.04970,A,1\n"


def gate(make_agent, tmp_path: Path, origin: str, device_id: str, entity: str, at: tuple[float, float],
         **policy: str):
    stops = tmp_path / "stops.txt"
    stops.write_text(STOPS)
    return make_agent(origin, device_id=device_id, entity=entity, stops_file=str(stops), location="platform",
                      position={"kind": "fixed", "lat": at[0], "long": at[1]}, policy=policy,
                      sync={"long_poll_s": 30, "feeds_interval_s": 3600})


async def running(*agents):
    for agent in agents:
        await agent.syncer.sync_once()
    return [asyncio.create_task(agent.run(install_signal_handlers=False)) for agent in agents]


async def stopped(agents, tasks) -> None:
    for agent in agents:
        agent.stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)


async def test_accepted_at_gate_a_is_refused_at_gate_b_of_the_same_platform(server, backoffice, make_agent,
                                                                           tmp_path):
    _, barcode = await issue(backoffice)
    a = gate(make_agent, tmp_path, server.origin, "gate-a", "val1", PLATFORM, passback_scope="stop-area")
    b = gate(make_agent, tmp_path, server.origin, "gate-b", "val2", PLATFORM, passback_scope="stop-area")
    tasks = await running(a, b)
    try:
        uses = b.syncer.feed("uses")
        await until(lambda: uses.holding, "gate B's uses feed to be held")
        assert (await a.handle_scan(barcode.encode())).event_result == 0  # uploaded at once: a quiet gate
        await until(lambda: uses.status.changes > 0, "gate A's acceptance to reach gate B")

        server.stop()  # B decides offline, with what it last received
        decision = await b.handle_scan(barcode.encode())
        assert decision.event_result == 8, decision.event_reason
        assert "accepted on val1 at stop area ODP" in decision.event_reason
        assert b.feedback.last.colour == "red"
    finally:
        await stopped([a, b], tasks)


async def test_accepted_here_and_50_km_away_ten_minutes_later_is_fraud(server, backoffice, make_agent, tmp_path):
    cli.add_credential(server.data_dir, "val3", "val", PASSWORD)
    _, barcode = await issue(backoffice)
    here = gate(make_agent, tmp_path, server.origin, "gate-a", "val1", PLATFORM)
    far = gate(make_agent, tmp_path, server.origin, "bus-far", "val3", FAR)
    far.clock = ClockWatch(wall=lambda: utcnow() + timedelta(minutes=10))  # its scans are 10 minutes later
    tasks = await running(here, far)
    try:
        assert (await here.handle_scan(barcode.encode())).event_result == 0
        uses = far.syncer.feed("uses")
        await until(lambda: uses.status.changes > 0, "the acceptance to reach the far validator")

        decision = await far.handle_scan(barcode.encode())
        assert decision.event_result == 9, decision.event_reason
        assert re.match(r"49\.\d km from its last use \(on val1 at stop area ODP\) in 6\d\d s \(29\d km/h > 200\)",
                        decision.event_reason), decision.event_reason
    finally:
        await stopped([here, far], tasks)
