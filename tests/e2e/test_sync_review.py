"""Sync must neither park good events for a device-level fault nor let one feed stall the rest."""
from __future__ import annotations

import json

import pytest

from agent.sync import AuthFailed, Transient, deny_entries, retry_after

from ..faultproxy import Fault, FaultProxy
from .conftest import ServerProcess
from .test_agent_server import issue


async def test_refused_credentials_park_nothing(server: ServerProcess, backoffice, make_agent):
    _, barcode = await issue(backoffice)
    agent = make_agent(server.origin)
    await agent.syncer.sync_once()
    for _ in range(5):
        await agent.handle_scan(barcode.encode())
    agent.syncer.client._password = "rotated-on-the-server"
    agent.syncer.client.forget_token()
    with pytest.raises(AuthFailed):
        await agent.syncer.upload_pending()
    cache = agent.engine.cache
    assert (cache.outbox_count(parked=False), cache.outbox_count(parked=True)) == (5, 0)


async def test_a_failing_feed_does_not_hold_the_events_back(server: ServerProcess, backoffice, make_agent):
    proxy = await FaultProxy(server.origin).start()
    try:
        _, barcode = await issue(backoffice)
        agent = make_agent(proxy.origin)
        await agent.syncer.sync_once()
        for _ in range(3):
            await agent.handle_scan(barcode.encode())
        proxy.inject(Fault("status", 503, path_contains="/blacklist"))
        with pytest.raises(Transient):
            await agent.syncer.sync_once()
        assert agent.engine.cache.outbox_count() == 0  # uploaded all the same
    finally:
        await proxy.stop()


async def test_deny_list_pages_until_empty(server: ServerProcess, backoffice, make_agent):
    revoked = []
    for i in range(25):
        ticket_id, _ = await issue(backoffice, f"trav-{i}")
        assert (await backoffice.put(f"/ticket/{ticket_id}/revoke", role="admin")).status == 200
        revoked.append(ticket_id)
    agent = make_agent(server.origin)
    agent.syncer.feed("deny-list").page = 10  # pages smaller than the list, as a server capping its pages gives
    await agent.syncer.refresh_feeds()
    cache = agent.engine.cache
    assert cache.deny_high_water() >= 25
    denied = {v for (v,) in cache.conn.execute("SELECT value FROM deny_list WHERE kind='ticket'")}
    assert set(revoked) <= denied


def test_malformed_deny_entries_are_stepped_over():
    page = [{"blacklistEntryId": 7, "ticketId": "T7", "expire": "2030-01-01T00:00:00Z"},
            {"blacklistEntryId": 8, "ticketId": "T8", "expire": "soon"},
            {"blacklistEntryId": "9", "ticketId": "T9", "expire": "2030-01-01T00:00:00Z"},
            {"blacklistEntryId": 10, "travellerId": "trav", "expire": "2030-01-01T00:00:00Z"},
            "not an entry"]
    rows, highest = deny_entries(page)
    assert [(kind, value, entry) for kind, value, _, entry in rows] == [("ticket", "T7", 7), ("traveller", "trav", 10)]
    assert highest == 10


@pytest.mark.parametrize("header, seconds", [("inf", 900.0), ("0", 1.0), ("nan", 60.0), ("-5", 1.0),
                                             ("later", 60.0), (None, 60.0), ("30", 30.0)])
def test_retry_after_is_kept_within_reason(header, seconds):
    assert retry_after(header) == seconds


async def test_stops_come_from_the_server_and_place_the_device(server: ServerProcess, backoffice, tmp_path):
    import shutil

    from agent.runtime import build_agent, close_agent
    from agent.stops import SAMPLE_STOPS
    from hardware import FixedPosition, SimulatedFeedback, SimulatedReader

    from .conftest import device_config

    shutil.copy(SAMPLE_STOPS, server.data_dir / "stops.txt")
    _, barcode = await issue(backoffice)
    agent = build_agent(device_config(tmp_path, server.origin, device_id="gate-odp"), reader=SimulatedReader(),
                        feedback=SimulatedFeedback(), position=FixedPosition(59.3429, 18.0497))
    try:
        assert agent.tracker.place().stop_area is None  # no stops yet
        stops = agent.syncer.feed("stops")
        await agent.syncer.sync_once()
        imported = stops.status.changes
        await agent.syncer.sync_once()  # unchanged: 304, not a second import
        assert imported > 0 and stops.status.changes == imported and stops.status.etag
        decision = await agent.handle_scan(barcode.encode())
        assert decision.event_result == 0
        assert decision.events[0]["stopArea"]["stopAreaId"] == "ODP"
        assert decision.events[0]["zone"]["zoneId"] == "A"
    finally:
        await close_agent(agent)


async def test_status_tells_an_operator_whether_the_device_syncs(server: ServerProcess, backoffice, make_agent,
                                                                capsys):
    from agent.cli import main

    _, barcode = await issue(backoffice)
    agent = make_agent(server.origin)
    await agent.syncer.sync_once()
    await agent.handle_scan(barcode.encode())
    db = str(agent.engine.cache.path)
    assert main(["status", "--db", db]) == 0
    before = json.loads(capsys.readouterr().out)
    assert before["outbox"] == 1 and "oldestQueuedEventAgeSeconds" in before and "lastUploadAt" not in before
    assert before["metadataCheckedAgeSeconds"] < 60 and before["issuerKeys"] >= 1 and before["kdks"] >= 1
    await agent.syncer.upload_pending()
    assert main(["status", "--db", db]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["outbox"] == 0 and after["lastUploadAgeSeconds"] < 60 and "oldestQueuedEventAt" not in after
