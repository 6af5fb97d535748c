"""Attacks on the B2B API by a hostile (or careless) partner, over real HTTP on 127.0.0.1 with
real API keys: each must get a 4xx naming the field, never a 500, and leave nothing applied."""
from __future__ import annotations

from datetime import datetime, timezone

import aiohttp
import pytest

from server.b2b import addresses, webhooks
from server.b2b.cli import run_deliver

from .conftest import Receiver, endpoint, row, start_world
from .test_b2b_admin import Admin

pytestmark = pytest.mark.usefixtures("world")


@pytest.mark.parametrize("extra, field", [
    # 9999-12-31 is how many HR systems (SAP among them) write "no end"; the day after it, or the
    # month after a pause ending then, is past the last date Python (and the stores) can hold
    ({"terminationDate": "9999-12-31"}, "employees[1].terminationDate"),
    ({"startDate": "9999-12-01", "terminationDate": "9999-12-31"}, "employees[1].startDate"),
    ({"absences": [{"startDate": "2024-02-01", "endDate": "9999-12-31"}]}, "employees[1].absences[0].endDate"),
    ({"absences": [{"startDate": "9999-12-01"}]}, "employees[1].absences[0].startDate"),
])
async def test_dates_at_the_end_of_the_calendar_are_422_naming_the_field(world, acme, extra, field):
    reply = await acme.sync([row("E-1"), row("E-2", **extra)])
    assert reply.status == 422, reply
    assert field in [d["field"] for d in reply.body["details"]], reply
    assert await acme.employees() == []  # nothing applied
    integration = await acme.get(f"/hr-integrations/{acme.integration}")
    assert integration.status == 200 and integration.body["data"]["lastSyncedAt"] is None, integration


async def test_webhooks_reach_no_loopback_address_by_any_spelling_unless_allowed(tmp_path, database_for):
    """A partner that gets the operator to register "its" webhook URL must not make the server
    POST to the server's own host (admin ports, the console, a metadata service): by default a
    delivery goes only to a public address, checked on the address actually connected to, so a
    DNS name that resolves to 127.0.0.1 (``localhost``), an IPv4-mapped IPv6 or an unspecified address
    are refused alike, and the log says why. Allowing the network lets the same receiver in."""
    world = start_world(tmp_path / "data", database_for(), webhook_allowed_networks=[])  # the default
    receiver = Receiver()
    try:
        async with aiohttp.ClientSession() as session:
            world.session = session
            company = world.company("Hostile")
            url = await receiver.start()
            port = url.split(":")[2].split("/")[0]
            spellings = (url, f"http://localhost:{port}/hook",
                         f"http://[::ffff:127.0.0.1]:{port}/hook", f"http://0.0.0.0:{port}/hook")
            now = datetime.now(timezone.utc)
            endpoints = [world.store.add_endpoint(company.id, u, list(webhooks.EVENT_TYPES), webhooks.new_secret(), now)
                         for u in spellings]
            assert (await company.sync([row("S1")])).status == 204
            assert (await run_deliver(world.data_dir, None))["attempts"] == len(spellings)
            assert receiver.statuses == []  # nothing reached the loopback receiver
            for endpoint_id in endpoints:
                [delivery] = world.store.deliveries(endpoint_id)
                assert delivery.status == "pending" and "not allowed" in (delivery.last_error or ""), delivery
    finally:
        await receiver.stop()
        world.server.stop()
        world.store.db.close()
    allowed = start_world(tmp_path / "allowed", database_for(), webhook_allowed_networks=["127.0.0.0/8"])
    receiver = Receiver()
    try:
        async with aiohttp.ClientSession() as session:
            allowed.session = session
            company = allowed.company("Trusted")
            await endpoint(allowed, company, receiver)
            assert (await company.sync([row("S1")])).status == 204
            assert await run_deliver(allowed.data_dir, None) == {"attempts": 1, "pending": 0}
            assert receiver.statuses == [204]
    finally:
        await receiver.stop()
        allowed.server.stop()
        allowed.store.db.close()


@pytest.mark.parametrize("address, extra, ok", [
    ("93.184.216.34", (), True), ("2606:4700::1111", (), True),
    ("127.0.0.1", (), False), ("127.8.9.10", (), False), ("::1", (), False), ("0.0.0.0", (), False),
    ("169.254.169.254", (), False), ("fe80::1%eth0", (), False), ("10.1.2.3", (), False), ("192.168.0.1", (), False),
    ("172.16.0.1", (), False), ("100.64.0.1", (), False), ("fc00::1", (), False), ("224.0.0.1", (), False),
    ("::ffff:127.0.0.1", (), False), ("::ffff:10.0.0.1", (), False), ("::ffff:93.184.216.34", (), True),
    ("64:ff9b::a00:1", (), False), ("64:ff9b::5db8:d822", (), True), ("2002:7f00:1::1", (), False),
    ("2002:a00:1::", (), False), ("::127.0.0.1", (), False), ("::7f00:1", (), False),
    ("10.1.2.3", ("10.0.0.0/8",), True), ("127.0.0.1", ("127.0.0.1",), True), ("127.0.0.2", ("127.0.0.1",), False),
])
def test_the_webhook_address_policy(address, extra, ok):
    assert addresses.allowed(address, addresses.networks(extra)) is ok


async def test_a_huge_member_name_is_neither_echoed_nor_kept_whole(world, acme):
    """A refused sync is answered with the fields it names and kept for the operator (the
    integration's errors, its sync runs); a member name of a megabyte must not come back, nor
    be stored, a megabyte at a time."""
    name = "k" * 1_000_000
    reply = await acme.sync([{**row("H1"), name: 1}])
    assert reply.status == 422, reply
    assert len(reply.raw) < 2_000, len(reply.raw)
    [detail] = reply.body["details"]
    assert detail["field"].startswith("employees[0].kkkk") and detail["index"] == 0, detail
    integration = await acme.get(f"/hr-integrations/{acme.integration}")
    assert len(integration.raw) < 4_000 and integration.body["data"]["errors"], integration
    stored = world.store.db.query("SELECT errors FROM b2b_hr_sync_failures WHERE integration_id = ?",
                                  (acme.integration,))
    assert [len(r["errors"]) < 2_000 for r in stored] == [True], [len(r["errors"]) for r in stored]


async def test_refused_syncs_keep_only_the_newest_hundred(world, acme):
    """A partner may send 100 refused syncs a minute, all day: the record of refused syncs is
    for the operator to see what went wrong lately, and keeps the newest 100 per integration."""
    for i in range(105):
        assert (await acme.sync([row("R1", email=f"not-an-email-{i}")])).status == 422
    stored = world.store.db.query("SELECT errors FROM b2b_hr_sync_failures WHERE integration_id = ? ORDER BY id",
                                  (acme.integration,))
    assert len(stored) == 100
    assert "not-an-email" not in stored[0]["errors"]  # (messages never echo the value)
    runs = await acme.get(f"/hr-integrations/{acme.integration}")
    assert runs.status == 200 and runs.body["data"]["errors"], runs


@pytest.mark.parametrize("url", ["http://[::1/hook", "http://a:99999/hook", "http://:80/hook", "https://user@/hook",
                                 "http://exa mple.com/"])
async def test_a_webhook_url_nothing_can_connect_to_is_422_naming_url(world, acme, url):
    """Stored, it would fail every delivery for a day, then disable the endpoint: refused at once."""
    reply = await Admin(world).call("POST", f"/companies/{acme.id}/webhook-endpoints", {"url": url})
    assert reply[0] == 422 and [d["field"] for d in reply[1]["details"]] == ["url"], reply
    assert world.store.list_endpoints(acme.id) == []
