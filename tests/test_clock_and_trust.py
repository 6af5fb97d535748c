"""Clock and keys (issue 6 item 5): stale trust lists raise an alarm, clock jumps are detected,
passback and fraud use monotonic time within a boot."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from mtb import signer
from agent.clock import ClockWatch
from mtb.scan_context import Context, Geo, Validator
from agent.runtime import OUT_OF_SERVICE, Agent
from mtb.timeutil import format_extended, utcnow
from hardware import SimulatedFeedback, SimulatedReader

from .conftest import NOW, ticket


class FakeClocks:
    """A wall clock and a monotonic clock the test moves independently."""

    def __init__(self) -> None:
        self.wall_now = NOW
        self.mono_now = 1000.0

    def tick(self, seconds: float, wall_extra: float = 0.0) -> None:
        self.mono_now += seconds
        self.wall_now += timedelta(seconds=seconds + wall_extra)

    def wall(self):
        return self.wall_now

    def mono(self) -> float:
        return self.mono_now


def test_clock_watch_reports_jumps_both_ways():
    clocks = FakeClocks()
    watch = ClockWatch(tolerance_s=60, wall=clocks.wall, monotonic=clocks.mono)
    clocks.tick(30)
    watch.read()
    assert not watch.jumps
    clocks.tick(10, wall_extra=3 * 3600)  # NTP after a long offline period
    watch.read()
    clocks.tick(10, wall_extra=-2 * 3600)  # a dead RTC battery, or someone winding it back
    watch.read()
    assert [round(j.seconds) for j in watch.jumps] == [3 * 3600, -2 * 3600]


def ctx(time, mono, boot="boot-1", geo=Geo(59.33, 18.06), validator="gate-1") -> Context:
    return Context(time=time, validator=Validator(validator), geo=geo, boot_id=boot, monotonic=mono)


def test_passback_uses_monotonic_time_when_the_wall_clock_jumps_forward(engine, issuer_key):
    raw = signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket(valid_until=NOW + timedelta(days=1))])
    assert engine.validate_sync(raw, ctx(NOW, 100.0)).event_result == 0
    # 60 s later by the monotonic clock, but the wall clock jumped 2 hours: still a passback
    assert engine.validate_sync(raw, ctx(NOW + timedelta(hours=2), 160.0)).event_result == 8
    # after a reboot the monotonic clock means nothing across boots: wall time decides
    assert engine.validate_sync(raw, ctx(NOW + timedelta(hours=2, seconds=1), 5.0, boot="boot-2")).event_result == 0


def test_fraud_uses_monotonic_time_when_the_wall_clock_jumps(engine, issuer_key):
    raw = signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket(valid_until=NOW + timedelta(days=1))])
    assert engine.validate_sync(raw, ctx(NOW, 100.0)).event_result == 0
    # Uppsala (64 km) "5 hours later" by a jumped wall clock, 5 minutes by the monotonic one
    far = ctx(NOW + timedelta(hours=5), 400.0, geo=Geo(59.86, 17.64), validator="gate-9")
    assert engine.validate_sync(raw, far).event_result == 9


def make_agent(engine, *, max_age: float, keep_validating: bool) -> Agent:
    return Agent(engine=engine, reader=SimulatedReader(), feedback=SimulatedFeedback(), validator=Validator("gate-1"),
                 metadata_max_age_s=max_age, validate_with_stale_metadata=keep_validating)


@pytest.mark.parametrize("keep_validating", [True, False])
async def test_stale_trust_list_raises_an_alarm_and_config_decides(engine, issuer_key, keep_validating, caplog):
    now = utcnow()
    raw = signer.mint(issuer_key, pid=1234, kid="1234:k1",
                      tickets=[ticket(valid_from=now - timedelta(hours=1), valid_until=now + timedelta(hours=1))])
    engine.cache.set_meta("metadata_checked_at", format_extended(now - timedelta(days=8)))
    agent = make_agent(engine, max_age=7 * 86400, keep_validating=keep_validating)
    decision = await agent.handle_scan(raw)
    assert "trust-list" in agent.alarms
    assert any("ALARM trust-list" in r.message for r in caplog.records)
    if keep_validating:
        assert decision.event_result == 0 and agent.feedback.last.colour == "green"
    else:
        assert decision.event_result == 1 and "trust list" in decision.event_reason
        assert (agent.feedback.last.colour, agent.feedback.last.text) == ("red", OUT_OF_SERVICE)
    assert engine.cache.outbox_count() == 1  # the refusal is on file too
    engine.cache.set_meta("metadata_checked_at", format_extended(now))  # a sync brings fresh keys
    await agent.handle_scan(b"junk")
    assert "trust-list" not in agent.alarms


async def test_agent_reports_a_clock_jump(engine):
    clocks = FakeClocks()
    agent = make_agent(engine, max_age=1e9, keep_validating=True)
    agent.clock = ClockWatch(tolerance_s=60, wall=clocks.wall, monotonic=clocks.mono)
    await agent.handle_scan(b"junk")
    clocks.tick(5, wall_extra=-4 * 3600)
    await agent.handle_scan(b"junk")
    assert agent.alarms["clock"].startswith("wall clock jumped -14400")
    assert "clock" in json.loads(engine.cache.get_meta("alarms"))  # what `agent status` shows
