"""Each feed adapter against the real server on 127.0.0.1: what it brings into the cache, its
cursor or ETag, and its own status (last success, last error, age) as ``agent status`` shows it."""
from __future__ import annotations

import json
import logging
import shutil

import pytest

from agent.cli import main
from agent.stops import SAMPLE_STOPS
from agent.sync import BadFeedData, SyncStatus, Transient
from mtb import keys

from .conftest import HIGH_LIMIT


async def revoke(api, traveller: str) -> str:
    reply = await api.issue(traveller)
    assert reply.status == 201, reply
    ticket_id = reply.body["ticketIds"][0]
    assert (await api.put(f"/ticket/{ticket_id}/revoke", role="admin")).status == 200
    return ticket_id


async def test_participant_metadata_by_etag(start_server, make_device):
    server = start_server(rate_limit=HIGH_LIMIT)
    device = make_device(server.base)
    feed = device.syncer.feed("participant-metadata")
    assert await feed.run() == 4  # issuer and auth-token keys of the server and of the other participant
    assert device.cache.keystore().issuer_key("1234", "1234:issuer-1") is not None
    etag = feed.status.etag
    assert etag and device.cache.get_meta("metadata_checked_at")
    device.cache.set_meta("metadata_checked_at", "2020-01-01T00:00:00.000Z")
    assert await feed.run() == 0  # 304: nothing imported...
    assert device.cache.get_meta("metadata_checked_at") > "2026"  # ...but the trust list is confirmed
    # The operator adds a participant: a new ETag, a new import.
    metadata_file = server.data_dir / "participant-metadata.json"
    document = json.loads(metadata_file.read_text())
    document += keys.participant_metadata(777, [keys.public_jwk(keys.generate_es256_key(), "777:k1")])
    metadata_file.write_text(json.dumps(document))
    assert await feed.run() == 5
    assert feed.status.etag != etag and device.cache.keystore().issuer_key("777", "777:k1") is not None
    stored = device.cache.get_meta("sync.participant-metadata")
    assert stored is not None and json.loads(stored)["etag"] == feed.status.etag


async def test_a_refused_trust_list_keeps_the_old_keys_and_says_why(start_server, make_device):
    server = start_server(rate_limit=HIGH_LIMIT)
    device = make_device(server.base)
    feed = device.syncer.feed("participant-metadata")
    await feed.run()
    metadata_file = server.data_dir / "participant-metadata.json"
    document = json.loads(metadata_file.read_text())
    for participant in document:
        participant["mtbPublicKeys"] = []  # no issuer key left: every ticket would become a 5
    metadata_file.write_text(json.dumps(document))
    with pytest.raises(BadFeedData):
        await feed.run()
    assert device.cache.keystore().issuer_key("1234", "1234:issuer-1") is not None
    status = SyncStatus.load(device.cache, "participant-metadata")
    assert status.failures == 1 and "no usable issuer key" in status.last_error
    assert status.last_success_at is not None and status.last_error_at >= status.last_success_at


async def test_kdks_replace_the_cached_ones_only_when_they_change(start_server, make_device):
    server = start_server(rate_limit=HIGH_LIMIT)
    device = make_device(server.base)
    device.cache.add_kdk("old", b"o" * 32)
    feed = device.syncer.feed("kdks")
    assert await feed.run() == 1
    kdks = device.cache.keystore().kdks
    assert set(kdks) == {"kdk-1"} and len(kdks["kdk-1"]) == 32
    assert await feed.run() == 0
    assert feed.status.changes == 1 and feed.status.last_success_at is not None


async def test_deny_list_pages_after_its_cursor(start_server, make_device, office):
    server = start_server(rate_limit=HIGH_LIMIT)
    api = office(server)
    revoked = [await revoke(api, f"trav-{i}") for i in range(7)]
    device = make_device(server.base)
    feed = device.syncer.feed("deny-list")
    feed.page = 3  # pages smaller than the list
    assert await feed.run() == 7
    assert feed.status.cursor == device.cache.deny_high_water() >= 7
    denied = {v for (v,) in device.cache.conn.execute("SELECT value FROM deny_list WHERE kind='ticket'")}
    assert set(revoked) <= denied
    assert await feed.run() == 0  # nothing after the cursor
    later = await revoke(api, "trav-late")
    assert await feed.run() == 1
    assert device.cache.denied([("ticket", later)], device.client.clock.wall()) == ("ticket", later)


async def test_stops_404_then_published_then_304(start_server, make_device):
    server = start_server(rate_limit=HIGH_LIMIT)
    device = make_device(server.base)
    seen: list[int] = []
    device.syncer.on_stops = lambda areas: seen.append(len(areas))
    feed = device.syncer.feed("stops")
    assert await feed.run() == 0 and feed.status.failures == 0  # this deployment publishes none
    shutil.copy(SAMPLE_STOPS, server.data_dir / "stops.txt")
    imported = await feed.run()
    assert imported > 0 and seen == [imported] and len(device.cache.stop_areas()) == imported
    assert await feed.run() == 0 and seen == [imported]  # 304: not imported again


async def test_a_failing_feed_records_its_error_logs_once_and_recovers(start_server, make_device, caplog):
    server = start_server(rate_limit=HIGH_LIMIT)
    device = make_device(server.base)
    feed = device.syncer.feed("kdks")
    await feed.run()
    server.stop()  # the server is gone
    caplog.set_level(logging.DEBUG, logger="agent.sync")
    for _ in range(3):
        with pytest.raises(Transient):
            await feed.run()
    assert feed.status.failures == 3 and feed.status.errors == 3
    failing = [r for r in caplog.records if r.levelno >= logging.WARNING and "sync kdks failing" in r.getMessage()]
    assert len(failing) == 1  # one log for the change of state, not one per retry
    assert feed.due > device.client.clock.monotonic()  # backing off
    restarted = start_server(rate_limit=HIGH_LIMIT)
    device.client.base_url = restarted.base
    device.client.forget_token()
    await feed.run()
    back = [r for r in caplog.records if r.levelno == logging.INFO and "sync kdks works again" in r.getMessage()]
    assert len(back) == 1 and feed.status.failures == 0 and feed.status.errors == 3


async def test_status_shows_each_feed_and_the_uploader(start_server, make_device, capsys):
    server = start_server(rate_limit=HIGH_LIMIT)
    device = make_device(server.base)
    await device.syncer.sync_once()
    assert main(["status", "--db", str(device.cache.path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert set(shown["sync"]) == {"participant-metadata", "kdks", "deny-list", "uses", "stops", "tickle-macros",
                                  "upload"}
    metadata = shown["sync"]["participant-metadata"]
    assert metadata["etag"] and metadata["lastSuccessAgeSeconds"] <= 5 and "lastError" not in metadata
    assert shown["sync"]["deny-list"]["cursor"] == 0
    server.stop()
    with pytest.raises(Transient):
        await device.syncer.feed("deny-list").run()
    assert main(["status", "--db", str(device.cache.path)]) == 0
    deny = json.loads(capsys.readouterr().out)["sync"]["deny-list"]
    assert deny["failures"] == 1 and deny["lastError"].startswith("Transient") and deny["lastErrorAgeSeconds"] <= 5
