"""The device process around the engine: position to stop area and zone, the fix lost, the
inspector's view, and a scan loop that survives failing parts."""
from __future__ import annotations

import functools
import operator
from datetime import timedelta

import pytest

from mtb import signer
from mtb.scan_context import Validator
from agent.runtime import Agent, PositionTracker
from agent.stops import SAMPLE_STOPS, StopLocator, load_stops
from mtb.timeutil import utcnow
from hardware import NmeaGps, SimulatedFeedback, SimulatedReader, SimulatedRoute

from .conftest import ticket

STOPS = load_stops(SAMPLE_STOPS)
BY_ID = {s.stop_area_id: s for s in STOPS}


def nmea(body: str) -> str:
    return f"${body}*{functools.reduce(operator.xor, body.encode(), 0):02X}"


def test_route_maps_to_stop_areas_and_keeps_the_last_when_the_fix_is_lost():
    route = SimulatedRoute([(BY_ID[s].lat, BY_ID[s].long) for s in ("CEN", "ODP", "UNI")], steps_per_leg=4)
    tracker = PositionTracker(route, StopLocator(STOPS))
    place = tracker.place()
    assert (place.stop_area.stop_area_id, place.stop_area.zone_id, place.stale) == ("CEN", "A", False)
    route.advance(2)  # between Centralstationen and Odenplan: still "after" Centralstationen
    assert tracker.place().stop_area.stop_area_id == "CEN"
    route.advance(2)
    assert tracker.place().stop_area.stop_area_id == "ODP"
    route.advance(4)
    assert tracker.place().stop_area.zone_id == "B"
    route.fix_lost = True  # a tunnel
    lost = tracker.place()
    assert lost.stale and lost.stop_area.stop_area_id == "UNI" and lost.geo is not None


def test_nmea_sentences_drive_the_stop_area():
    gps = NmeaGps(reader=SimulatedReader())
    tracker = PositionTracker(gps, StopLocator(STOPS))
    gps.feed(nmea("GPGGA,081500.00,5920.5740,N,01803.0000,E,1,08,0.9,12.0,M,24.0,M,,"))  # Odenplan
    assert tracker.place().stop_area.stop_area_id == "ODP"
    gps.feed("$GPGGA,081501.00,5923.5000,N,01802.4780,E,1,08,0.9,12.0,M,24.0,M,,*00")  # bad checksum: ignored
    assert tracker.place().stop_area.stop_area_id == "ODP"
    gps.feed(nmea("GPGGA,081502.00,,,,,0,00,,,M,,M,,"))  # no fix
    place = tracker.place()
    assert place.stale and place.stop_area.stop_area_id == "ODP"
    assert gps.stats["bad_checksum"] == 1


def live_ticket(issuer_key, **fields) -> bytes:
    now = utcnow()
    return signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket(
        valid_from=now - timedelta(hours=1), valid_until=now + timedelta(hours=1), **fields)])


async def test_inspection_shows_ticket_details_and_earlier_events(engine, issuer_key):
    raw = live_ticket(issuer_key, product_id="month-AB", traveller_id="trav-9", zones=["A", "B"])
    bus = Agent(engine=engine, reader=SimulatedReader(), feedback=SimulatedFeedback(), validator=Validator("bus-1"))
    await bus.handle_scan(raw)  # the same cache: the handheld sees the validation
    handheld = Agent(engine=engine, reader=SimulatedReader(), feedback=SimulatedFeedback(),
                     validator=Validator("handheld-1"), mode="inspection")
    await handheld.handle_scan(raw)
    shown = handheld.feedback.last
    assert shown.colour == "green"
    text = "\n".join(shown.lines)
    assert "product month-AB" in text and "traveller trav-9" in text and "zones A,B" in text
    assert "earlier:" in text and "validation result 0" in text


async def test_a_scan_loop_survives_a_broken_display_and_a_broken_engine(engine, issuer_key, caplog):
    class BrokenDisplay(SimulatedFeedback):
        async def show(self, colour, text, lines=None):
            raise OSError("display unplugged")

    agent = Agent(engine=engine, reader=SimulatedReader(), feedback=BrokenDisplay(), validator=Validator("g"))
    decision = await agent.handle_scan(live_ticket(issuer_key))
    assert decision.event_result == 0 and engine.cache.outbox_count() == 1  # recorded all the same

    agent.feedback = SimulatedFeedback()
    engine.cache.conn.close()  # the disk is gone: the engine cannot record
    assert await agent.handle_scan(live_ticket(issuer_key)) is None
    assert (agent.feedback.last.colour, agent.feedback.last.text) == ("red", "Please try again")
    assert "scan could not be recorded (1 in a row)" in caplog.text and "device.db" in caplog.text


async def test_inspection_details_failing_still_shows_the_decision(engine, issuer_key, caplog):
    def broken(*args):
        raise __import__("sqlite3").OperationalError("disk I/O error")

    handheld = Agent(engine=engine, reader=SimulatedReader(), feedback=SimulatedFeedback(),
                     validator=Validator("handheld-1"), mode="inspection")
    engine.cache.recent_uses = broken
    decision = await handheld.handle_scan(live_ticket(issuer_key))
    assert decision.event_result == 0 and handheld.feedback.last.colour == "green"
    assert "could not gather the ticket's details" in caplog.text


def test_prune_forgets_old_usage_and_long_expired_deny_entries(engine, issuer_key):
    cache = engine.cache
    now = utcnow()
    from mtb.scan_context import Context

    for days_ago in (40, 1):
        engine.validate_sync(live_ticket(issuer_key), Context(time=now - timedelta(days=days_ago),
                                                             validator=Validator(f"g{days_ago}")))
    cache.deny("ticket", "OLD", now - timedelta(days=3))
    cache.deny("ticket", "LIFTED-TODAY", now - timedelta(hours=1))
    cache.deny("ticket", "ACTIVE", now + timedelta(days=3))
    cache.observe_server_time(now, now)  # pruning counts back from the server's time
    assert cache.prune(now, history_days=35) == (1, 1)
    assert [u.device_id for u in cache.recent_uses("T1")] == ["g1"]
    assert {v for (v,) in cache.conn.execute("SELECT value FROM deny_list")} == {"LIFTED-TODAY", "ACTIVE"}
    assert cache.outbox_count() == 2  # the outbox is never pruned


async def test_the_watchdog_is_silent_while_the_engine_hangs(engine, tmp_path, monkeypatch):
    """systemd restarts an agent that stops pinging: a scan stuck in the engine (a hung disk)
    must stop the pings, and they come back when the engine answers again."""
    import asyncio
    import socket
    import threading

    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # a ping every 50 ms while all is well
    loop = asyncio.get_running_loop()

    async def pings(count: int) -> None:
        for _ in range(count):
            assert await asyncio.wait_for(loop.sock_recv(notify, 100), 5) == b"WATCHDOG=1"

    agent = Agent(engine=engine, reader=SimulatedReader(), feedback=SimulatedFeedback(), validator=Validator("g"))
    watchdog = asyncio.create_task(agent._watchdog())
    started, release = threading.Event(), threading.Event()

    def stuck() -> bool:
        started.set()
        return release.wait(30)

    try:
        await pings(2)
        hung = engine.schedule(stuck)  # the engine's thread is stuck in one job
        assert await loop.run_in_executor(None, started.wait, 5)
        await asyncio.sleep(0.2)  # a probe answered just before the hang may still ping
        while True:  # drain what was sent before the hang took hold
            try:
                notify.recv(100)
            except BlockingIOError:
                break
        with pytest.raises(asyncio.TimeoutError):  # ten intervals without a ping
            await asyncio.wait_for(loop.sock_recv(notify, 100), 0.5)
        release.set()
        assert await hung is True
        await pings(2)
    finally:
        release.set()
        agent.stop.set()
        await watchdog
        notify.close()
