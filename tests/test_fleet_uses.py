"""Other devices' uses in the device cache (the uses feed's entries): what passback (8) and
travel-speed fraud (9) make of them under each passback scope, and how they are forgotten."""
from __future__ import annotations

from datetime import timedelta

import pytest

from agent.cache import Use
from agent.engine import Engine
from mtb.policy import Policy
from agent.sync import fleet_uses
from mtb.timeutil import format_extended

from .conftest import NOW
from .test_engine import ctx, issue

STOCKHOLM = (59.33, 18.06)
UPPSALA_WAY = (59.78, 18.06)  # 50 km north


def other(use_id: int, ago_s: float, *, device: str = "gate-2", stop: str | None = "SA1",
          at: tuple[float, float] = STOCKHOLM) -> tuple[int, Use]:
    return use_id, Use("T1", NOW - timedelta(seconds=ago_s), "validation", 0, device, stop, "A", *at)


def decide(cache, issuer_key, scope: str, **context) -> tuple[int, str]:
    engine = Engine(cache, Policy(passback_scope=scope))  # type: ignore[arg-type]
    try:
        decision = engine.validate_sync(issue(issuer_key), ctx(**context))
        return decision.event_result, decision.event_reason
    finally:
        engine.close()


@pytest.mark.parametrize("scope, stop_here, expected", [
    ("device", "SA1", 0),  # another gate's acceptance is not this device's passback
    ("stop-area", "SA1", 8),  # ... but it is the platform's
    ("stop-area", "SA2", 0),  # another stop area's is not
    ("stop-area", None, 0),  # a device that does not know where it is: its own uses only
    ("operator", "SA2", 8),  # operator-wide: any device's, anywhere
])
def test_passback_scope_decides_whose_acceptances_count(cache, issuer_key, scope, stop_here, expected):
    cache.apply_fleet_uses([other(1, 30)], 1)
    code, reason = decide(cache, issuer_key, scope, stop_area=stop_here)
    assert code == expected, reason
    if expected == 8:
        assert reason == "accepted on gate-2 at stop area SA1 30 s ago (passback window 600 s)"


def test_this_devices_own_acceptance_counts_under_every_scope(cache, issuer_key):
    assert decide(cache, issuer_key, "device", time=NOW - timedelta(seconds=20))[0] == 0
    for scope in ("device", "stop-area", "operator"):
        assert decide(cache, issuer_key, scope, stop_area="SA2")[0] == 8, scope  # wherever it is now


def test_a_use_50_km_away_ten_minutes_ago_on_another_device_is_fraud(cache, issuer_key):
    cache.apply_fleet_uses([other(1, 600, device="bus-99", stop="FAR", at=UPPSALA_WAY)], 1)
    code, reason = decide(cache, issuer_key, "device")
    assert code == 9, reason
    assert reason.startswith("50.0 km from its last use (on bus-99 at stop area FAR) in 600 s (300 km/h")
    cache.apply_fleet_uses([other(2, 3600, device="bus-98", stop="FAR2", at=UPPSALA_WAY)], 2)
    assert decide(cache, issuer_key, "device")[0] == 9  # the latest use is the one compared


def test_the_latest_of_own_and_other_uses_is_compared(cache, issuer_key):
    # this device accepted it here 2 h ago; another device 50 km away 1 h ago: 50 km in 1 h is fine
    decide(cache, issuer_key, "device", time=NOW - timedelta(hours=2))
    cache.apply_fleet_uses([other(1, 3600, device="bus-99", stop="FAR", at=UPPSALA_WAY)], 1)
    assert decide(cache, issuer_key, "device")[0] == 0


def test_feed_entries_this_devices_own_and_malformed_ones_are_left_out_but_passed():
    time = format_extended(NOW)
    page = [{"useId": 3, "ticketId": "T1", "time": time, "device": "val1", "stopAreaId": "SA1"},  # its own
            {"useId": 4, "ticketId": "T1", "time": "yesterday", "device": "val2"},
            {"useId": 5, "ticketId": "T1", "time": time, "device": "val2", "geo": {"lat": 91, "long": 0}},
            {"useId": "6"},
            {"useId": 7, "ticketId": "T2", "time": time, "device": "val2", "zoneId": "A",
             "geo": {"lat": 59.33, "long": 18.06}}]
    uses, highest = fleet_uses(page, own="val1")
    assert highest == 7
    assert uses == [(7, Use("T2", NOW, "validation", 0, "val2", None, "A", 59.33, 18.06))]


def test_pruning_counts_back_from_the_servers_time_not_a_fast_device_clock(cache):
    cache.apply_fleet_uses([other(1, 7200), other(2, 1800)], 2)
    assert cache.prune_fleet_uses(3600, NOW) == 0  # never in touch with the server: nothing is forgotten
    cache.observe_server_time(NOW, NOW + timedelta(days=2))  # the device clock runs two days fast
    assert cache.prune_fleet_uses(3600, NOW + timedelta(days=2)) == 1  # only the one 2 h before the server's time
    anywhere, _ = cache.fleet_last_uses("T1", None)
    assert anywhere is not None and anywhere.time == NOW - timedelta(seconds=1800)
    assert cache.uses_high_water() == 2


def test_a_scans_one_lookup_finds_the_latest_other_use_anywhere_and_at_the_stop_area(cache):
    """Cache.scan_facts brings other devices' latest use of the ticket in its one statement:
    the latest anywhere, and the latest at the stop area asked for (none asked: none looked up)."""
    cache.apply_fleet_uses([other(1, 300, stop="SA1"), other(2, 60, stop="SA2"), other(3, 30, stop=None)], 3)
    found = cache.scan_facts("T1", "bus-17", [("ticket", "T1")], NOW, "SA1")
    assert (found.fleet_last.time, found.fleet_here.time) == (NOW - timedelta(seconds=30), NOW - timedelta(seconds=300))
    assert (found.fleet_last, found.fleet_here) == cache.fleet_last_uses("T1", "SA1")
    assert cache.scan_facts("T1", "bus-17", [], NOW, "SA2").fleet_here.stop_area == "SA2"
    assert cache.scan_facts("T1", "bus-17", [], NOW).fleet_here is None
    assert cache.scan_facts("T1", "bus-17", [], NOW, "SA9").fleet_here is None
    assert cache.scan_facts("T2", "bus-17", [], NOW, "SA1").fleet_last is None
    assert (found.last, found.here, found.denied) == (None, None, None)  # this device never saw it
