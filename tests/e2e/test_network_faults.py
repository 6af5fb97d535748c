"""Network faults (issue 6 item 2): a long outage, 5xx, slow answers, resets mid-batch and 429
storms between the agent and the real server; the outbox drains, each event once, and scans
never wait for the network."""
from __future__ import annotations

import asyncio
import os
import sqlite3

from agent.sync import Backoff

from ..faultproxy import Fault, FaultProxy
from .conftest import ServerProcess
from .test_agent_server import issue


def stored_events(server: ServerProcess) -> dict[str, int]:
    """localEventId -> how many times the server stored it (read from its own database)."""
    with sqlite3.connect(server.data_dir / "server.sqlite3") as conn:
        return dict(conn.execute("SELECT local_event_id, count(*) FROM events GROUP BY local_event_id").fetchall())


async def drain(agent, timeout_s: float = 30) -> None:
    stop = asyncio.Event()
    runner = asyncio.create_task(agent.syncer.run(stop))
    for _ in range(int(timeout_s / 0.05)):
        if agent.engine.cache.outbox_count() == 0:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await runner


async def test_thousands_of_scans_offline_then_each_event_once(server: ServerProcess, backoffice, make_agent):
    _, barcode = await issue(backoffice)
    agent = make_agent(server.origin)
    agent.syncer.uploader.batch_size = 500
    agent.syncer.set_backoff(lambda: Backoff(base_s=0.02, cap_s=0.2))
    await agent.syncer.sync_once()
    server.stop()
    for i in range(3000):
        await agent.handle_scan(barcode.encode() if i % 3 else os.urandom(30))
    local_ids = [e.local_event_id for e in agent.engine.cache.outbox(limit=10_000)]
    assert agent.decided == len(local_ids) == 3000
    server.start()
    await drain(agent)
    assert agent.engine.cache.outbox_count() == 0
    stored = stored_events(server)
    assert all(stored.get(i) == 1 for i in local_ids)


async def test_5xx_resets_and_429_storm_drain_each_event_once(server: ServerProcess, backoffice, make_agent):
    proxy = await FaultProxy(server.origin).start()
    try:
        _, barcode = await issue(backoffice)
        agent = make_agent(proxy.origin)
        agent.syncer.uploader.batch_size = 10
        agent.syncer.set_backoff(lambda: Backoff(base_s=0.01, cap_s=0.05))
        await agent.syncer.sync_once()
        for _ in range(60):
            await agent.handle_scan(barcode.encode())
        on_upload = "/validation"
        proxy.inject(*[Fault("status", s, path_contains=on_upload) for s in (500, 502, 503, 504)],
                     Fault("reset-before", path_contains=on_upload),
                     Fault("reset-after", path_contains=on_upload),
                     *[Fault("status", 429, retry_after=0.02, path_contains=on_upload) for _ in range(15)],
                     Fault("reset-after", path_contains=on_upload),
                     Fault("status", 503, path_contains="/blacklist"))
        await drain(agent)
        assert agent.engine.cache.outbox_count() == 0
        assert not proxy.faults  # every fault was met
        local_ids = [e["localEventId"] for d in agent.decisions for e in d.events]
        stored = stored_events(server)
        assert [stored.get(i) for i in local_ids] == [1] * 60
    finally:
        await proxy.stop()


async def test_a_slow_server_never_holds_up_a_scan(server: ServerProcess, backoffice, make_agent):
    proxy = await FaultProxy(server.origin).start()
    try:
        _, barcode = await issue(backoffice)
        agent = make_agent(proxy.origin)
        await agent.syncer.sync_once()
        await agent.handle_scan(barcode.encode())
        proxy.inject(Fault("delay", delay_s=3.0, path_contains="/validation"))
        upload = asyncio.create_task(agent.syncer.upload_pending())
        await asyncio.sleep(0.2)  # the upload is now waiting on the slow server
        for _ in range(20):
            decision = await agent.handle_scan(barcode.encode())
            assert decision is not None
        assert not upload.done()  # twenty scans were decided, shown and recorded meanwhile
        assert len(agent.feedback.shown) == 21
        await upload
    finally:
        await proxy.stop()
