"""The back office's fraud check (issue 12: ``GET /fraudcheck``) asked by real agents of the real
server on 127.0.0.1. The far validator is kept from hearing of the first acceptance through the
uses feed (it synced before it, and polls once an hour), so only the server can tell it that the
ticket was used 50 km away ten minutes earlier. Waiting on the engine's side:
tests/test_fraudcheck_wait.py. Each scan's outcome is counted in the agent's metrics."""
from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

from agent.clock import ClockWatch
from mtb.timeutil import utcnow
from server import cli

from ..faultproxy import Fault, FaultProxy
from .conftest import free_port
from .test_agent_metrics import parse
from ..server.conftest import PASSWORD
from .test_agent_server import issue, server_events
from .test_fleet_passback import FAR, PLATFORM

QUIET = {"long_poll_s": 0, "feeds_interval_s": 3600}  # no uses feed between the initial sync and the scan


def validator(make_agent, origin: str, device_id: str, entity: str, at: tuple[float, float], **sync: Any):
    return make_agent(origin, device_id=device_id, entity=entity, location="platform",
                      position={"kind": "fixed", "lat": at[0], "long": at[1]}, sync={**QUIET, **sync},
                      metrics={"port": free_port()})


async def fraudchecks(agent) -> dict[str, float]:
    """The agent's ``mtb_agent_fraudchecks_total`` by outcome, as its metrics port would serve it."""
    return {dict(labels)["outcome"]: value for (name, labels), value in parse(await agent.metrics.render()).items()
            if name == "mtb_agent_fraudchecks_total"}


async def accepted_and_uploaded(backoffice, agent, ticket_id: str, barcode: str) -> None:
    assert (await agent.handle_scan(barcode.encode())).event_result == 0
    await agent.syncer.sync_once()
    assert [e["eventResult"] for e in await server_events(backoffice, ticket_id)] == [0]


async def far_validator(server, make_agent, origin: str, **sync: Any):
    """val3, 50 km north, its clock ten minutes on; synced (token in hand) before the first use."""
    cli.add_credential(server.data_dir, "val3", "val", PASSWORD)
    far = validator(make_agent, origin, "bus-far", "val3", FAR, **sync)
    far.clock = ClockWatch(wall=lambda: utcnow() + timedelta(minutes=10))
    await far.syncer.sync_once()
    return far


async def test_the_servers_velocity_over_the_limit_is_fraud(server, backoffice, make_agent):
    ticket_id, barcode = await issue(backoffice)
    far = await far_validator(server, make_agent, server.origin, fraudcheck_budget_ms=1000)
    here = validator(make_agent, server.origin, "gate-a", "val1", PLATFORM)
    await here.syncer.sync_once()
    await accepted_and_uploaded(backoffice, here, ticket_id, barcode)

    decision = await far.handle_scan(barcode.encode())
    assert decision.event_result == 9, decision.event_reason
    assert re.fullmatch(r"the back office's fraud check: 29\d km/h from its last sighting \(> 200\)",
                        decision.event_reason), decision.event_reason
    assert far.engine.cache.fleet_last_uses(ticket_id, None) == (None, None)  # the device itself knew nothing
    assert await fraudchecks(far) == {"answered": 1, "unanswered": 0, "unsupported": 0, "not_asked": 0}


async def test_an_answer_past_the_budget_is_not_waited_for(server, backoffice, make_agent):
    proxy = await FaultProxy(server.origin).start()
    try:
        ticket_id, barcode = await issue(backoffice)
        far = await far_validator(server, make_agent, proxy.origin, fraudcheck_budget_ms=150)
        here = validator(make_agent, server.origin, "gate-a", "val1", PLATFORM)
        await here.syncer.sync_once()
        await accepted_and_uploaded(backoffice, here, ticket_id, barcode)

        proxy.inject(Fault("delay", delay_s=3.0, path_contains="/fraudcheck"))
        decision = await far.handle_scan(barcode.encode())
        assert decision.event_result == 0, decision.event_reason  # decided with what the device has
        assert not proxy.faults  # it did ask, and the answer (fraud) came too late to count
        # counted when the question's own deadline passes on the event loop, which may be just
        # after the engine stopped waiting for it
        expected = {"answered": 0, "unanswered": 1, "unsupported": 0, "not_asked": 0}
        for _ in range(100):  # bounded: 5 s
            if await fraudchecks(far) == expected:
                break
            await asyncio.sleep(0.05)
        assert await fraudchecks(far) == expected
    finally:
        await proxy.stop()


async def test_a_back_office_without_the_fraud_check_is_not_asked_again(server, backoffice, make_agent):
    proxy = await FaultProxy(server.origin).start()
    try:
        agent = validator(make_agent, proxy.origin, "gate-a", "val1", PLATFORM, fraudcheck_budget_ms=1000)
        await agent.syncer.sync_once()
        proxy.inject(Fault("status", 404, path_contains="/fraudcheck"))
        for traveller in ("trav-1", "trav-2"):
            _, barcode = await issue(backoffice, traveller)
            assert (await agent.handle_scan(barcode.encode())).event_result == 0
        assert [entry for entry in proxy.log if entry[1].endswith("/fraudcheck")] == [
            ("GET", "/api/v1/fraudcheck", 404)]  # the second scan did not ask
        assert await fraudchecks(agent) == {"answered": 0, "unanswered": 0, "unsupported": 1, "not_asked": 1}
    finally:
        await proxy.stop()


async def test_fraudcheck_off_never_asks(server, backoffice, make_agent):
    proxy = await FaultProxy(server.origin).start()
    try:
        agent = validator(make_agent, proxy.origin, "gate-a", "val1", PLATFORM, fraudcheck=False)
        await agent.syncer.sync_once()
        _, barcode = await issue(backoffice)
        assert (await agent.handle_scan(barcode.encode())).event_result == 0
        await agent.syncer.sync_once()  # the upload goes through the proxy too
        assert any(path.endswith("/validation") for _, path, _ in proxy.log)
        assert not any(path.endswith("/fraudcheck") for _, path, _ in proxy.log)
        assert set((await fraudchecks(agent)).values()) == {0}
    finally:
        await proxy.stop()
