"""A revoke reaches running agents through their held deny-list requests (issue 14.3), long
before the next poll, and their next scan of the ticket is refused; a server that does not hold
is polled at the feed interval, no faster."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .conftest import ServerProcess
from .test_agent_server import issue

POLL_INTERVAL_S = 3600.0  # the poll alone would bring the revoke an hour later
BOUND_S = 30.0  # generous for a loaded machine, and still 120 times below the poll interval


async def until(condition: Callable[[], bool], what: str, timeout: float = BOUND_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def pushed_agent(make_agent, origin: str, device_id: str = "bus-1", entity: str = "val1", **sync: float):
    return make_agent(origin, device_id=device_id, entity=entity,
                      sync={"feeds_interval_s": POLL_INTERVAL_S, "long_poll_s": 30, **sync})


async def test_a_revoke_reaches_running_agents_through_their_held_requests(server, backoffice, make_agent):
    ticket_id, barcode = await issue(backoffice)
    agents = [pushed_agent(make_agent, server.origin, "bus-1", "val1"),
              pushed_agent(make_agent, server.origin, "bus-2", "val2")]
    for agent in agents:
        await agent.syncer.sync_once()
    running = [asyncio.create_task(agent.run(install_signal_handlers=False)) for agent in agents]
    try:
        assert (await agents[0].handle_scan(barcode.encode())).event_result == 0
        feeds = [agent.syncer.feed("deny-list") for agent in agents]
        for deny in feeds:
            await until(lambda: deny.holding, "the deny-list request to be held")
        asked = [deny.requests for deny in feeds]

        assert (await backoffice.put(f"/ticket/{ticket_id}/revoke", role="admin")).status == 200
        for deny in feeds:
            await until(lambda: deny.status.changes > 0, "the revoke to reach the agent")
        assert [deny.requests for deny in feeds] == asked  # through the requests held before the revoke

        for agent in agents:
            decision = await agent.handle_scan(barcode.encode())
            assert decision.event_result == 7, decision.event_reason
            assert agent.feedback.last.colour == "red"
        for deny in feeds:
            await until(lambda: deny.holding, "the next hold")  # and each holds again
    finally:
        for agent in agents:
            agent.stop.set()
        await asyncio.wait_for(asyncio.gather(*running), 30)


async def test_a_server_that_does_not_hold_is_polled_at_the_feed_interval(tmp_path, make_agent):
    from ..server.conftest import make_data_dir

    data = make_data_dir(tmp_path / "nohold", long_poll_max_seconds=0,  # answers every wait=S at once
                         rate_limit={"requests": 100_000, "window_seconds": 60, "block_seconds": 1, "roles": {}})
    server = ServerProcess(data).start()
    try:
        agent = pushed_agent(make_agent, server.origin)
        await agent.syncer.sync_once()
        deny = agent.syncer.feed("deny-list")
        asked = deny.requests
        stop = asyncio.Event()
        syncing = asyncio.create_task(agent.syncer.run(stop))
        await until(lambda: deny.requests > asked, "the first long-poll")
        await asyncio.sleep(1.0)  # a device that mistook the empty answers for held ones would ask 1000s of times
        stop.set()
        await asyncio.wait_for(syncing, 30)
        assert deny.requests == asked + 1  # one empty answer at once: back to polling, next in an hour
        assert deny.status.failures == 0
    finally:
        server.stop()
