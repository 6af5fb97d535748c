"""The console's fleet pages over real HTTP, on both store backends: every device from its state
reports (role, last contact marked when silent, outbox, list ages, alarms, software, clock skew),
filtered, sorted and paged; a device's page (latest state, its events, its state history, thinned
and pruned); and on the deny list how many devices still have to fetch each entry."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, unquote

from server.store import DenyEntry, DeviceReport

from .console_client import ConsoleClient, assert_times_in_zone, client_session
from .test_fleet import state

SILENT = '{"softwareVersion":"1.3.9","outbox":{"depth":7},"cache":{"ok":false}}'


async def signed_in(deployment, session) -> ConsoleClient:
    client = ConsoleClient(deployment.server.origin, session)
    assert (await client.sign_in("admin")).status == 303
    return client


def row_of(page_text: str, device: str) -> str:
    found = re.search(rf'<tr>\s*<td><a href="/console/devices/{quote(device, safe="")}">.*?</tr>', page_text, re.S)
    assert found, page_text[:3000]
    return found.group(0)


def report(deployment, *reports: DeviceReport) -> None:
    """Reports as any server process would have stored them (at the times they carry)."""
    store = deployment.store()
    try:
        for one in reports:
            store.report_device(one)
    finally:
        store.close()


def devices_on(page_text: str) -> list[str]:
    return [unquote(d) for d in re.findall(r'<td><a href="/console/devices/([^"]+)">', page_text)]


async def test_the_fleet_page_shows_every_device_and_marks_the_silent_ones(make_server, api_for):
    d = make_server(console={"timezone": "Europe/Berlin"})
    api = await api_for(d)
    alarm = [{"kind": "clock-skew", "message": "device clock 95 s ahead"}]
    assert (await api.post("/device/state", state(depth=3), role="val")).status == 200
    ages = {"denyList": 3.0, "uses": 1200.0, "participantMetadata": None}
    assert (await api.post("/device/state", state(version="1.5.0", depth=40, alarms=alarm, clockSkewSeconds=95.0,
                                                  listAgesSeconds=ages), role="ins")).status == 200
    now = datetime.now(timezone.utc)
    report(d, DeviceReport("val2", now - timedelta(hours=1), "1.3.9", 7, 0, SILENT),  # heard from an hour ago
           DeviceReport("4321:val-of-4321", now, "2.0.0", 0, 0, json.dumps(state(version="2.0.0"))))
    async with client_session() as session:
        client = await signed_in(d, session)
        page = await client.get("/console/fleet")
        assert page.status == 200
        assert "4 devices: <strong>2</strong> fine" in page.text and "1</strong> with an alarm" in page.text
        assert "1</strong> silent for more than 15 min" in page.text
        silent = row_of(page.text, "val2")
        assert "60 min ago (silent)" in silent and 'class="stale"' in silent and "<td>val</td>" in silent
        assert devices_on(page.text)[0] == "val2"  # the longest silent first
        ins = row_of(page.text, "ins1")
        assert "<td>ins</td>" in ins and "clock-skew" in ins and "1.5.0" in ins and "40, oldest 12 s" in ins
        assert '<span class="stale">1 parked</span>' in ins
        assert '<span class="stale">+95.0 s (over 60 s)</span>' in ins  # beyond clock_skew_seconds
        assert "<span>denyList 3 s</span>" in ins and '<span class="stale">participantMetadata never</span>' in ins
        assert '<span class="stale">uses 20 min (old)</span>' in ins  # older than device_silent_seconds
        val = row_of(page.text, "val1")
        assert "<span>-0.4 s</span>" in val and "none" in val and "(silent)" not in val
        assert "<td>participant 4321</td>" in row_of(page.text, "4321:val-of-4321")
        foreign = await client.get("/console/devices/" + quote("4321:val-of-4321", safe=""))
        assert foreign.status == 200 and "a device of participant 4321" in foreign.text
        assert assert_times_in_zone(page.text, "Europe/Berlin") == 4  # each last contact, UTC on hover and focus

        assert devices_on((await client.get("/console/fleet?show=silent")).text) == ["val2"]
        assert devices_on((await client.get("/console/fleet?show=alarm")).text) == ["ins1"]
        by_outbox = devices_on((await client.get("/console/fleet?sort=outbox")).text)
        assert by_outbox == ["ins1", "val2", "val1", "4321:val-of-4321"]  # the fullest first, ties by name
        assert (await client.get("/console/fleet?show=broken")).status == 400
        assert (await client.get("/console/fleet?sort=state")).status == 400


async def test_the_fleet_is_paged(make_server):
    d = make_server(console={"page_size": 5})
    now = datetime.now(timezone.utc)
    report(d, *(DeviceReport(f"val-{i:02d}", now, "1.4.0", 0, 0, json.dumps(state())) for i in range(7)))
    async with client_session() as session:
        client = await signed_in(d, session)
        first = await client.get("/console/fleet?sort=device")
        second = await client.get("/console/fleet?sort=device&page=2")
    assert devices_on(first.text) == [f"val-{i:02d}" for i in range(5)] and "1&ndash;5 of 7" in first.text
    assert devices_on(second.text) == ["val-05", "val-06"]
    assert 'href="/console/fleet?sort=device&amp;page=1"' in second.text


async def test_a_devices_page_has_its_state_its_events_and_its_history(make_server, api_for, make_event):
    d = make_server(console={"page_size": 5})
    api = await api_for(d)
    for _ in range(3):  # the same state three times in a row: one line of history
        assert (await api.post("/device/state", state(depth=2), role="val")).status == 200
    alarm = [{"kind": "stale-trust-list", "message": "trust list 2 days old"}]
    assert (await api.post("/device/state", state(depth=9, alarms=alarm), role="val")).status == 200  # changed
    events = [make_event(f"T-dev-{i}", f"dev-{i}", eventResult=7 if i == 6 else 0) for i in range(7)]
    assert (await api.post("/validation", events, role="val")).status == 200  # BoB: no body
    assert (await api.post("/inspection", [make_event("T-ins", "ins-1", eventType="inspection")],
                           role="ins")).status == 200
    async with client_session() as session:
        client = await signed_in(d, session)
        page = await client.get("/console/devices/val1")
        assert page.status == 200
        latest = page.text[page.text.index("Latest state"):page.text.index("Recent events")]
        assert "stale-trust-list: trust list 2 days old" in latest and "9, oldest 12 s" in latest
        recent = page.text[page.text.index("Recent events"):page.text.index("State history")]
        assert "1&ndash;5 of 7" in recent and "/console/tickets/T-dev-6" in recent and "T-dev-1" not in recent
        assert recent.index("T-dev-6") < recent.index("T-dev-5")  # the latest first
        assert "7 · on the deny list" in recent and "stop area SA1" in recent
        older = await client.get("/console/devices/val1?page=2")
        assert "T-dev-1" in older.text and "T-dev-0" in older.text and "T-dev-6" not in older.text
        history = page.text[page.text.index("State history"):]
        assert history.count("<tr><td><time") == 2
        assert history.index("stale-trust-list") < history.index("<td>2")  # newest first
        never = await client.get("/console/devices/ins1")  # posted an event, never reported its state
        assert never.status == 200 and "never reported its state" in never.text and "T-ins" in never.text
        assert (await client.get("/console/devices/nobody")).status == 404
        assert (await client.get("/console/devices/val1?history=0")).status == 400


async def test_the_state_history_keeps_changes_and_one_line_in_5_minutes_for_a_week(make_server):
    d = make_server(console={"page_size": 5})
    t0 = datetime.now(timezone.utc) - timedelta(days=9)

    def at(delta: timedelta, version: str = "1.4.0", alarms: int = 0) -> DeviceReport:
        return DeviceReport("val1", t0 + delta, version, 0, alarms, json.dumps(state(version=version)))

    report(d, at(timedelta(0)), at(timedelta(minutes=1)),  # the same within 5 min: kept once
           at(timedelta(minutes=2), alarms=1),  # an alarm: kept
           at(timedelta(minutes=3), version="1.4.1", alarms=1),  # new software: kept
           at(timedelta(minutes=4), version="1.4.1", alarms=1),  # the same: not kept
           at(timedelta(minutes=9), version="1.4.1", alarms=1))  # the same, 6 min later: kept
    assert [r[0] for r in d.rows("SELECT at FROM device_history WHERE device = ? ORDER BY at", ("val1",))] == [
        (t0 + timedelta(minutes=m)).isoformat(timespec="milliseconds").replace("+00:00", "Z") for m in (0, 2, 3, 9)]
    async with client_session() as session:
        client = await signed_in(d, session)
        page = await client.get("/console/devices/val1")
        assert page.text[page.text.index("State history"):].count("<tr><td><time") == 4
        report(d, at(timedelta(days=8), version="1.5.0"))  # a week later: the first week is gone
        page = await client.get("/console/devices/val1")
    assert d.rows("SELECT count(*) FROM device_history")[0][0] == 1
    assert page.text[page.text.index("State history"):].count("<tr><td><time") == 1


async def test_a_devices_state_history_is_paged_apart_from_its_events(make_server):
    d = make_server(console={"page_size": 5})
    t0 = datetime.now(timezone.utc) - timedelta(hours=1)
    report(d, *(DeviceReport("val1", t0 + timedelta(minutes=i), f"1.4.{i}", 0, 0, json.dumps(state(version=f"1.4.{i}")))
                for i in range(7)))  # new software each time: seven lines
    async with client_session() as session:
        client = await signed_in(d, session)
        first, second = await client.get("/console/devices/val1"), await client.get("/console/devices/val1?history=2")

    def history(page) -> list[str]:
        return re.findall(r"</time></td><td>(1\.4\.\d)</td>", page.text[page.text.index("State history"):])

    assert history(first) == ["1.4.6", "1.4.5", "1.4.4", "1.4.3", "1.4.2"]  # newest first
    assert history(second) == ["1.4.1", "1.4.0"] and "6&ndash;7 of 7" in second.text
    assert 'href="/console/devices/val1?history=1"' in second.text


async def test_the_deny_list_counts_the_devices_that_still_have_to_fetch_an_entry(make_server, api_for):
    d = make_server()
    api = await api_for(d)
    now = datetime.now(timezone.utc)
    store = d.store()
    try:
        expire = now + timedelta(days=1)
        older = store.add_deny(DenyEntry(expire, ticket_id="T-older", reason="revoke",
                                         created_at=now - timedelta(minutes=10)))
        newer = store.add_deny(DenyEntry(expire, ticket_id="T-newer", reason="revoke",
                                         created_at=now - timedelta(minutes=2)))
    finally:
        store.close()
    no_age = {k: v for k, v in state().items() if k != "listAgesSeconds"}
    assert (await api.post("/device/state", no_age, role="val")).status == 200
    async with client_session() as session:
        client = await signed_in(d, session)
        unknown = await client.get("/console/deny-list")
        assert "No device gives its deny list's age in its state reports (1 report their state)" in unknown.text
        assert "Devices without it" not in unknown.text
        # val1 fetched 5 minutes ago (between the two entries), ins1 just now; val2 does not say
        assert (await api.post("/device/state", dict(state(), listAgesSeconds={"denyList": 300.0}),
                               role="val")).status == 200
        assert (await api.post("/device/state", dict(state(), listAgesSeconds={"denyList": 0.0}),
                               role="ins")).status == 200
        report(d, DeviceReport("val2", now, "1.4.0", 0, 0, json.dumps(no_age)))
        page = await client.get("/console/deny-list")
    assert ('<strong class="stale">1 of 2</strong> devices have not fetched the newest entry yet; the one furthest '
            'behind still has <strong>1</strong> entry to fetch.') in page.text
    assert "1 more device does not report it." in page.text
    assert re.search(rf"<td>{newer}</td>.*?<td class=\"stale\">1</td>\s*</tr>", page.text, re.S)
    assert re.search(rf"<td>{older}</td>.*?<td>0</td>\s*</tr>", page.text, re.S)
