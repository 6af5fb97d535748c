"""Time the device can trust (issue 10.2): the clock floor, the server's time and skew, pruning
that a wrong clock cannot steer, and no passback refusal for a scan dated before the accepted one."""
from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta

from agent.cache import Cache, Use
from agent.clock import ClockWatch
from mtb.scan_context import Context, Validator
from agent.engine import Engine
from agent.messages import OUT_OF_SERVICE
from agent.runtime import Agent
from hardware import SimulatedFeedback, SimulatedReader
from mtb import keys, signer

from .conftest import NOW, ticket


class Clocks:
    """A wall clock the test sets, and a monotonic clock that only moves forwards."""

    def __init__(self) -> None:
        self.wall_now, self.mono_now = NOW, 1000.0

    def set(self, wall, seconds: float = 1.0) -> None:
        self.wall_now, self.mono_now = wall, self.mono_now + seconds

    def wall(self):
        return self.wall_now

    def mono(self) -> float:
        return self.mono_now


def agent_on(engine: Engine, clocks: Clocks) -> Agent:
    agent = Agent(engine=engine, reader=SimulatedReader(), feedback=SimulatedFeedback(), validator=Validator("gate-1"))
    agent.clock = ClockWatch(tolerance_s=1e9, wall=clocks.wall, monotonic=clocks.mono)  # jumps are not this test's
    return agent


def mint(issuer_key, ticket_id: str = "T1", **fields) -> bytes:
    return signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket(ticket_id, **fields)])


def test_observe_server_time_keeps_the_time_and_the_skew_and_alarms_beyond_the_threshold(cache, caplog):
    cache.observe_server_time(NOW, NOW + timedelta(seconds=10))
    assert cache.server_time() == NOW and float(cache.get_meta("clock_skew_s")) == 10.0
    assert "clock-skew" not in cache.alarms()
    for _ in range(2):  # the alarm is logged when raised, not at every sync that still sees the skew
        cache.observe_server_time(NOW + timedelta(minutes=1), NOW + timedelta(minutes=1, seconds=-45))
    assert cache.alarms()["clock-skew"]["text"] == "device clock is -45 s off the server's (max 30 s)"
    assert caplog.text.count("ALARM clock-skew") == 1
    cache.observe_server_time(NOW + timedelta(minutes=2), NOW + timedelta(minutes=2, seconds=3))
    assert "clock-skew" not in cache.alarms()


def test_the_skew_threshold_is_configurable(tmp_path):
    with Cache(tmp_path / "c.db", max_skew_s=60) as cache:
        cache.observe_server_time(NOW, NOW + timedelta(seconds=45))
        assert "clock-skew" not in cache.alarms()
        cache.observe_server_time(NOW, NOW + timedelta(seconds=61))
        assert "clock-skew" in cache.alarms()


async def test_a_clock_below_the_floor_is_out_of_service_not_green_for_an_expired_ticket(engine, issuer_key):
    clocks = Clocks()
    agent = agent_on(engine, clocks)
    assert (await agent.handle_scan(mint(issuer_key, "T0"))).event_result == 0  # recorded at NOW
    expired = mint(issuer_key, "OLD", valid_from=NOW - timedelta(hours=5), valid_until=NOW - timedelta(hours=3))
    clocks.set(NOW - timedelta(hours=4))  # a dead RTC battery: the clock reads 4 hours ago
    decision = await agent.handle_scan(expired)
    assert decision.event_result == 1 and "before the newest recorded event" in decision.event_reason
    assert (agent.feedback.last.colour, agent.feedback.last.text) == ("red", OUT_OF_SERVICE)
    assert decision.passenger_message == OUT_OF_SERVICE
    assert "clock-floor" in agent.alarms and "clock-floor" in json.loads(engine.cache.get_meta("alarms"))
    assert engine.cache.outbox()[-1].body["eventReason"] == decision.event_reason  # the refusal is on file
    clocks.set(NOW + timedelta(minutes=1))  # NTP puts it right
    assert (await agent.handle_scan(expired)).event_result == 3
    assert "clock-floor" not in agent.alarms


async def test_no_passback_refusal_0_s_ago_from_a_clock_set_back(engine, issuer_key):
    clocks = Clocks()
    agent = agent_on(engine, clocks)
    raw = mint(issuer_key, valid_until=NOW + timedelta(days=1))
    assert (await agent.handle_scan(raw)).event_result == 0
    clocks.set(NOW - timedelta(hours=2), seconds=900)  # past the passback window by the monotonic clock
    assert (await agent.handle_scan(raw)).event_result == 1  # out of service, not 8 "0 s ago"


def test_the_floor_survives_a_restart(tmp_path, issuer_key):
    path = tmp_path / "c.db"
    with Cache(path) as cache:
        cache.observe_server_time(NOW, NOW)
    with Cache(path) as cache:
        assert cache.clock.problem(NOW - timedelta(hours=1)) is not None
        assert cache.clock.problem(NOW - timedelta(seconds=30)) is None  # within the tolerance
        cache.record([], [Use("T1", NOW + timedelta(hours=2), "validation", 0, "g", None, None, None, None)])
    with Cache(path) as cache:
        assert "newest recorded event" in cache.clock.problem(NOW + timedelta(hours=1))


def test_the_floor_survives_a_restart_after_a_thousand_refused_scans(tmp_path):
    """The floor is found again from the latest usage rows; refusals below it keep it in the cache."""
    path = tmp_path / "c.db"
    with Cache(path, durability="normal") as cache:
        cache.record([], [Use("T1", NOW, "validation", 0, "g", None, None, None, None)])
        back = NOW - timedelta(days=2)
        cache.record([], [Use(f"R{i}", back, "validation", 1, "g", None, None, None, None) for i in range(1200)])
    with Cache(path) as cache:
        assert cache.clock.problem(back) is not None


def test_the_servers_time_forgives_events_recorded_with_a_fast_clock(tmp_path):
    path = tmp_path / "c.db"
    with Cache(path) as cache:
        cache.record([], [Use("T1", NOW + timedelta(days=40), "validation", 0, "g", None, None, None, None)])
        assert cache.clock.problem(NOW) is not None  # until the server says what time it is
        cache.observe_server_time(NOW, NOW + timedelta(days=40))
        assert cache.clock.problem(NOW) is None and "clock-skew" in cache.alarms()
    with Cache(path) as cache:
        assert cache.clock.problem(NOW) is None


async def test_maintenance_with_a_clock_40_days_fast_keeps_deny_entries_in_force(engine, issuer_key, caplog):
    cache = engine.cache
    cache.observe_server_time(NOW, NOW)
    cache.apply_deny_entries([("ticket", "REVOKED", NOW + timedelta(days=3), 7)], high_water=7)
    old = Context(time=NOW - timedelta(days=36), validator=Validator("g"))
    engine.validate_sync(mint(issuer_key, "ANCIENT", valid_from=old.time, valid_until=old.time + timedelta(hours=1)),
                         old)
    recent = Context(time=NOW - timedelta(days=1), validator=Validator("g"))
    engine.validate_sync(mint(issuer_key, "RECENT", valid_from=recent.time, valid_until=NOW + timedelta(days=1)),
                         recent)
    clocks = Clocks()
    clocks.set(NOW + timedelta(days=40))
    agent = agent_on(engine, clocks)
    caplog.set_level(logging.INFO, "agent.runtime")
    maintenance = asyncio.create_task(agent._maintenance())
    for _ in range(500):  # bounded: the first round prunes at once
        if "pruned" in caplog.text:
            break
        await asyncio.sleep(0.01)
    agent.stop.set()
    await maintenance
    assert "pruned 1 usage rows and 0 expired deny entries" in caplog.text  # only what the server's time allows
    assert cache.denied([("ticket", "REVOKED")], NOW) == ("ticket", "REVOKED")
    assert cache.deny_high_water() == 7
    assert [u.ticket_id for u in cache.recent_uses("RECENT")] == ["RECENT"]
    revoked = mint(issuer_key, "REVOKED")
    assert engine.validate_sync(revoked, Context(time=NOW, validator=Validator("g"))).event_result == 7


def test_without_a_server_time_no_deny_entry_is_pruned(cache):
    cache.deny("ticket", "LOCAL", NOW - timedelta(days=10))
    assert cache.prune(NOW + timedelta(days=40), history_days=35) == (0, 0)
    assert cache.conn.execute("SELECT count(*) FROM deny_list").fetchone()[0] == 1


def test_a_scan_dated_before_an_accepted_scan_is_not_a_passback(engine, issuer_key):
    raw = mint(issuer_key, valid_from=NOW - timedelta(hours=2))
    here = Validator("gate-1")
    assert engine.validate_sync(raw, Context(time=NOW, validator=here, boot_id="b1", monotonic=50.0)).event_result == 0
    earlier = Context(time=NOW - timedelta(seconds=30), validator=here, boot_id="b2", monotonic=10.0)
    decision = engine.validate_sync(raw, earlier)
    assert decision.event_result == 0, decision.event_reason


def test_the_cli_keeps_its_own_time(tmp_path, issuer_key):
    """`validate --at` is an operator's question about a moment; the floor is the device's."""
    path = tmp_path / "c.db"
    with Cache(path) as cache:
        cache.import_metadata(keys.participant_metadata(1234, [keys.public_jwk(issuer_key, "1234:k1")]))
        cache.observe_server_time(NOW, NOW)
        engine = Engine(cache)
        try:
            earlier = Context(time=NOW - timedelta(hours=3), validator=Validator("cli"))
            raw = mint(issuer_key, valid_from=earlier.time - timedelta(hours=1))
            assert engine.validate_sync(raw, earlier).event_result == 0
        finally:
            engine.close()
