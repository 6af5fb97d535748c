"""The agent against the bundled server over real HTTP on 127.0.0.1."""
from __future__ import annotations

import asyncio
import os

import pytest

import mtb
from agent.sync import Backoff, Transient

from ..faultproxy import Fault, FaultProxy
from .conftest import ServerProcess


async def issue(backoffice, traveller: str = "trav-1", **manifest) -> tuple[str, str]:
    """A ticket issued on the server: (ticketId, the MTB as the wallet shows it)."""
    reply = await backoffice.issue(traveller, manifest=manifest or None, issueMtb=True)
    assert reply.status == 201, reply
    return reply.body["ticketIds"][0], reply.body["ticketBundle"]["mtb"]


async def server_events(backoffice, ticket_id: str) -> list[dict]:
    reply = await backoffice.get(f"/ticket/{ticket_id}/event", role="admin")
    assert reply.status == 200, reply
    return [e["ticketEvent"] for e in reply.body]


async def test_issued_ticket_accepted_then_refused_after_revoke(server, backoffice, make_agent):
    ticket_id, barcode = await issue(backoffice)
    agent = make_agent(server.origin)
    await agent.syncer.sync_once()  # keys, KDKs, deny-list
    decision = await agent.handle_scan(barcode.encode())
    assert decision.event_result == 0, decision.event_reason
    assert agent.feedback.last.colour == "green"

    reply = await backoffice.put(f"/ticket/{ticket_id}/revoke", role="admin")
    assert reply.status == 200, reply
    await agent.syncer.refresh_feeds()
    decision = await agent.handle_scan(barcode.encode())
    assert decision.event_result == 7, decision.event_reason
    assert agent.feedback.last.colour == "red"

    await agent.syncer.upload_pending()
    assert agent.engine.cache.outbox_count() == 0
    events = await server_events(backoffice, ticket_id)
    assert sorted(e["eventResult"] for e in events if e.get("eventType") == "validation") == [0, 7]


async def test_offline_period_reaches_the_server_once(server: ServerProcess, backoffice, make_agent):
    ticket_ids = []
    barcodes = []
    for i in range(3):
        ticket_id, barcode = await issue(backoffice, f"trav-{i}")
        ticket_ids.append(ticket_id)
        barcodes.append(barcode)
    agent = make_agent(server.origin)
    await agent.syncer.sync_once()
    server.stop()  # the outage
    for round_ in range(20):
        for barcode in barcodes:
            await agent.handle_scan(barcode.encode())
        await agent.handle_scan(os.urandom(40))
    assert len(agent.decisions) == 80
    with pytest.raises(Transient):
        await agent.syncer.upload_pending()
    assert agent.engine.cache.outbox_count() == 80
    server.start()  # back on the same port, same data
    await agent.syncer.upload_pending()
    assert agent.engine.cache.outbox_count() == 0
    for ticket_id in ticket_ids:
        events = [e for e in await server_events(backoffice, ticket_id) if e.get("eventType") == "validation"]
        assert len(events) == 20
        assert len({e["localEventId"] for e in events}) == 20
        assert [e["eventResult"] for e in events].count(0) == 1  # then passback


async def test_429_and_503_are_retried_and_a_lost_answer_is_not_duplicated(server, backoffice, make_agent):
    proxy = await FaultProxy(server.origin).start()
    try:
        _, barcode = await issue(backoffice)
        agent = make_agent(proxy.origin)
        agent.syncer.set_backoff(lambda: Backoff(base_s=0.02, cap_s=0.1))
        await agent.syncer.sync_once()
        for _ in range(5):
            await agent.handle_scan(barcode.encode())
        proxy.inject(Fault("status", 503, path_contains="/validation"),
                     Fault("status", 429, retry_after=0.2, path_contains="/validation"),
                     Fault("reset-after", path_contains="/validation"),
                     Fault("status", 502, path_contains="/validation"))
        stop = asyncio.Event()
        runner = asyncio.create_task(agent.syncer.run(stop))
        for _ in range(200):
            if agent.engine.cache.outbox_count() == 0:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await runner
        statuses = [s for m, p, s in proxy.log if p.endswith("/validation")]
        assert statuses[:4] == [503, 429, "reset-after", 502]
        assert statuses[-1] == 200  # BoB: the whole batch stored, no body
        assert agent.engine.cache.outbox_count() == 0
        ticket_id = mtb.decode(barcode).tickets[0].ticket_id
        events = [e for e in await server_events(backoffice, ticket_id) if e.get("eventType") == "validation"]
        assert len(events) == 5  # the batch whose answer was lost was stored once
    finally:
        await proxy.stop()


async def test_a_refused_event_is_parked_not_dropped_and_the_rest_go_up(server, backoffice, make_agent):
    _, barcode = await issue(backoffice)
    agent = make_agent(server.origin)
    await agent.syncer.sync_once()
    for _ in range(4):
        await agent.handle_scan(barcode.encode())
    cache = agent.engine.cache
    bad = cache.outbox()[2]
    broken = dict(bad.body, eventResult="not a number")
    cache.conn.execute("UPDATE outbox SET body=? WHERE seq=?", (__import__("json").dumps(broken), bad.seq))
    await agent.syncer.upload_pending()
    assert cache.outbox_count(parked=False) == 0
    [parked] = cache.outbox(parked=True)
    assert parked.local_event_id == bad.local_event_id and "400" in parked.last_error


async def test_sigterm_equivalent_stop_loses_nothing(server, backoffice, make_agent):
    _, barcode = await issue(backoffice)
    agent = make_agent(server.origin)
    await agent.syncer.sync_once()
    for _ in range(3):
        await agent.reader.push(barcode)
    task = asyncio.create_task(agent.run(install_signal_handlers=False))
    await agent.feedback.wait_for(3, timeout=10)
    agent.stop.set()
    await asyncio.wait_for(task, 10)
    assert len(agent.decisions) == 3
    assert agent.engine.cache.outbox_count() == 0  # the final upload on the way out
    assert len(agent.feedback.shown) == 3  # every decision reached the passenger before the stop
