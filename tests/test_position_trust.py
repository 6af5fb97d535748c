"""A position the device can trust (issue 10.4): impossible fixes are no fix, jumps faster than a
vehicle are not believed until confirmed, and nothing the agent queues can be refused by the
server for its shape (checked against the agent's copy of the ticketEvent model, and that copy
against the server's own)."""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import operator
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import mtb
from agent.cli import main
from mtb.scan_context import Context, Geo, Service, Validator
from agent.engine import place_members
from agent.place import CONFIRM_FIXES, PositionTracker
from agent.runtime import Agent
from agent.stops import SAMPLE_STOPS, StopLocator, load_stops
from hardware import Fix, NmeaGps, SimulatedFeedback, SimulatedReader, parse_nmea
from hardware.position import NmeaError
from mtb import signer
from mtb.ticket_event import event_problems
from mtb.timeutil import utcnow
from server.models import TicketEvent

from .conftest import NOW, ticket

STOPS = {s.stop_area_id: s for s in load_stops(SAMPLE_STOPS)}


def nmea(body: str) -> str:
    return f"${body}*{functools.reduce(operator.xor, body.encode(), 0):02X}"


class Source:
    """A position source handing out the fixes a test gives it."""

    def __init__(self) -> None:
        self.fix: Fix | None = None

    def current(self) -> Fix | None:
        return self.fix

    async def run(self) -> None:
        return None

    async def close(self) -> None:
        return None


@pytest.mark.parametrize("sentence", [
    "GPGGA,081500.00,9530.0000,N,01803.0000,E,1,08,0.9,12.0,M,24.0,M,,",  # latitude 95.5
    "GPGGA,081500.00,5920.5740,N,19930.0000,E,1,08,0.9,12.0,M,24.0,M,,",  # longitude 199.5
    "GPGGA,081500.00,5920.5740,N,01803.0000,E,1,08,0.9,NaN,M,24.0,M,,",  # altitude NaN
    "GPRMC,081500.00,A,9530.0000,N,01803.0000,E,0.0,0.0,020326,,,A",
])
def test_an_nmea_fix_off_the_earth_is_malformed_not_a_fix(sentence):
    with pytest.raises(NmeaError):
        parse_nmea(nmea(sentence))
    gps = NmeaGps(reader=SimulatedReader())
    gps.feed(nmea(sentence))
    assert gps.current() is None and gps.stats["malformed"] == 1


def test_an_impossible_fix_is_no_fix_and_is_logged_once(caplog):
    source = Source()
    tracker = PositionTracker(source, StopLocator(list(STOPS.values())))
    source.fix = Fix(STOPS["ODP"].lat, STOPS["ODP"].long)
    assert tracker.place().stop_area.stop_area_id == "ODP"
    for bad in (Fix(95.5, 199.5), Fix(59.3, 18.0, math.nan), Fix(math.inf, 18.0), Fix(95.5, 199.5)):
        source.fix = bad
        place = tracker.place()
        assert place.stale and place.geo == Geo(STOPS["ODP"].lat, STOPS["ODP"].long)  # the last trusted place
    assert caplog.text.count("treated as no fix") == 1 and tracker.stats["implausible"] == 4


def test_a_jump_faster_than_a_vehicle_is_held_until_fixes_confirm_it(caplog):
    source = Source()
    tracker = PositionTracker(source, StopLocator(list(STOPS.values())), max_speed_kmh=200)
    odp, mor = STOPS["ODP"], STOPS["MOR"]
    source.fix = Fix(odp.lat, odp.long, time=NOW)
    assert tracker.place().stop_area.stop_area_id == "ODP"
    source.fix = Fix(mor.lat, mor.long, time=NOW + timedelta(seconds=1))  # 6 km in a second: multipath
    held = tracker.place()
    assert held.stale and held.stop_area.stop_area_id == "ODP"  # zone A stands, not C
    source.fix = Fix(odp.lat + 0.0001, odp.long, time=NOW + timedelta(seconds=2))  # back: it was a glitch
    assert tracker.place().stop_area.stop_area_id == "ODP"
    places = []
    for i in range(CONFIRM_FIXES):  # a real move (after a tunnel, say) is followed once fixes agree
        source.fix = Fix(mor.lat, mor.long, time=NOW + timedelta(seconds=3 + i))
        places.append(tracker.place())
    assert [p.stale for p in places] == [True] * (CONFIRM_FIXES - 1) + [False]
    assert places[-1].stop_area.stop_area_id == "MOR" and tracker.stats["jumps"] == 1 + CONFIRM_FIXES - 1
    assert caplog.text.count("fix jumped") == 2  # once per episode, not once per fix


def test_a_bus_driving_at_its_speed_is_no_jump():
    source = Source()
    tracker = PositionTracker(source, StopLocator(list(STOPS.values())), max_speed_kmh=200)
    odp, kth = STOPS["ODP"], STOPS["KTH"]
    source.fix = Fix(odp.lat, odp.long, time=NOW)
    tracker.place()
    source.fix = Fix(kth.lat, kth.long, time=NOW + timedelta(minutes=3))  # 1.3 km in 3 minutes
    assert tracker.place().stop_area.stop_area_id == "KTH"


async def test_an_impossible_fix_never_reaches_an_event(engine, issuer_key):
    source = Source()
    agent = Agent(engine=engine, reader=SimulatedReader(), feedback=SimulatedFeedback(), validator=Validator("bus-1"),
                  tracker=PositionTracker(source, None, max_speed_kmh=200), operator_pid=1234)
    source.fix = Fix(95.5, 199.5, math.nan)
    now = utcnow()
    raw = signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket(valid_from=now - timedelta(hours=1),
                                                                           valid_until=now + timedelta(hours=1))])
    decision = await agent.handle_scan(raw)
    assert decision.event_result == 0 and "geo" not in decision.events[0]


def test_an_event_the_server_would_refuse_is_mended_before_it_is_queued(engine, issuer_key, tmp_path, capsys):
    """Whatever slips past the position checks: the outbox takes only what the server accepts."""
    raw = signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket()])
    ctx = Context(time=NOW, validator=Validator("bus-1"), geo=Geo(95.5, 199.5, math.nan), zone="A", operator_pid=1234)
    decision = engine.validate_sync(raw, ctx)
    [event] = decision.events
    assert "geo" not in event and event["zone"] == {"pid": 1234, "zoneId": "A"}
    assert "[dropped geo.lat: Input should be less than or equal to 90]" in event["eventReason"]
    assert decision.event_result == 0
    [queued] = engine.cache.outbox()
    TicketEvent.model_validate_json(queued.body_json)  # the server takes it
    engine.cache.close()
    assert main(["outbox", "list", "--json", "--db", str(engine.cache.path)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["localEventId"] == event["localEventId"]  # valid JSON, no NaN


def agent_made_events(engine, issuer_key) -> list[dict]:
    """Events as the engine makes them: every member it can fill, unreadable input, hostile ids."""
    key = b"k" * 32
    from mtb import keys

    full = Context(time=NOW, validator=Validator("bus-17", "vehicle", "door 2"), geo=Geo(59.33, 18.06, 12.5),
                   zone="A", stop_area="CEN", mode_of_transport="bus",
                   service=Service("17", "17-0815", "B3"), operator_pid=1234, boot_id="b", monotonic=1.0)
    bound = signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket("BOUND")], bind_device="phone-1", dsp=1234)
    signed = signer.device_sign(bound, did="phone-1", kid="kdk-1", device_key=keys.derive_device_key(key, "phone-1"),
                                at=NOW)
    scans = [
        (signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket("T1", zones=["A"])]), full),
        (signed, full),
        (signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket("X" * 500)]), full),
        (b"not an mtb at all", Context(time=NOW, validator=Validator("gate"))),
        (mtb.b64url_encode(b"\xa1" * 40).encode(), full),
        (signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket("T1", valid_until=NOW - timedelta(1))]),
         Context(time=NOW, validator=Validator("handheld"), mode="inspection")),
    ]
    return [event for raw, ctx in scans for event in engine.validate_sync(raw, ctx).events]


def test_agent_made_events_pass_the_servers_own_model(engine, issuer_key):
    events = agent_made_events(engine, issuer_key)
    assert {e["eventResult"] for e in events} >= {0, 1, 3}
    for event in events:
        TicketEvent.model_validate_json(json.dumps(event))
        assert event_problems(event) == {}


members = st.fixed_dictionaries({
    "ticketId": st.text(max_size=210),
    "time": st.sampled_from(["2026-03-02T08:30:00.000Z", "2026-03-02T08:30:00", "0001-01-01T00:00:00+14:00",
                             "yesterday", "2026-03-02T08:30:00+01:00", "20260302T083000Z", "2026-03-02T08:30:00+0100",
                             "1773000000"]),
}, optional={
    "eventResult": st.one_of(st.integers(-2, 12), st.booleans(), st.text(max_size=2)),
    "eventReason": st.text(max_size=1005),
    "geo": st.fixed_dictionaries({"lat": st.floats(-100, 100), "long": st.floats(-200, 200)},
                                 optional={"alt": st.one_of(st.none(), st.floats(allow_nan=False))}),
    "stopArea": st.fixed_dictionaries({"pid": st.integers(-1, 2 ** 54), "stopAreaId": st.text(max_size=205)}),
    "validator": st.fixed_dictionaries({}, optional={"validatorId": st.text(max_size=205),
                                                     "location": st.text(max_size=1005)}),
    "eventType": st.sampled_from(["validation", "inspection", "check-in"]),
    "modeOfTransport": st.text(max_size=55),
    "operatingDayDate": st.sampled_from(["2026-03-02", "20260302", "2026-02-30", "tomorrow"]),
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=members)
def test_the_agents_check_and_the_servers_model_agree(event):
    """Whatever the agent's check accepts the server accepts, and what it refuses the server refuses."""
    try:
        TicketEvent.model_validate_json(json.dumps(event))
        server_accepts = True
    except ValidationError:
        server_accepts = False
    assert (event_problems(event) == {}) == server_accepts, event


places = st.builds(
    lambda validator, geo, zone, stop, operator, mot, mode: Context(
        time=NOW, validator=validator, geo=geo, zone=zone, stop_area=stop, operator_pid=operator,
        mode_of_transport=mot, mode=mode),
    validator=st.builds(Validator, st.text(max_size=205), st.none() | st.text(max_size=1005)),
    geo=st.none() | st.builds(Geo, st.one_of(st.floats(-100, 100), st.integers(-90, 90), st.booleans()),
                              st.floats(-200, 200), st.none() | st.floats()),
    zone=st.none() | st.text(max_size=205) | st.integers(0, 2), stop=st.none() | st.sampled_from(["CEN", "S" * 201]),
    operator=st.none() | st.integers(-1, 2 ** 54) | st.sampled_from([True, 1.0, 1234.0]),
    mot=st.none() | st.text(max_size=55),
    mode=st.sampled_from(["validation", "inspection"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(ctx=places, which=st.integers(0, 2))
def test_what_the_engine_queues_from_any_place_is_what_it_decided_and_what_the_server_takes(engine, issuer_key,
                                                                                         ctx, which):
    """The engine checks a scan's place (validator, position, stop, zone, mode) against the model
    once while it stays the same, and vouches for the members it makes itself: whatever the
    place, each queued body is the decision's event, the server takes it, and a member the server
    would refuse is dropped and named in the reason, never queued."""
    raw = [signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket("T1")]),
           signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket("X" * 300)]),
           b"junk"][which]
    decision = engine.validate_sync(raw, ctx)
    queued = {e.local_event_id: e.body_json for e in engine.cache.outbox(limit=100_000)}
    for event in decision.events:
        body = queued[event["localEventId"]]
        assert json.loads(body) == json.loads(json.dumps(event)) and event_problems(event) == {}
        TicketEvent.model_validate_json(body)
        assert ("[dropped " in event["eventReason"]) == bool(event_problems({**event, **place_members(ctx)}))


def test_a_place_equal_in_value_but_not_in_type_is_checked_again(engine, issuer_key):
    """1.0 == True, but the server takes a latitude of 1.0 and refuses one of true."""
    raw = signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket()])
    for lat, kept in ((1.0, True), (True, False), (1.0, True), (1, True)):
        [event] = engine.validate_sync(raw, Context(time=NOW, validator=Validator("bus-1"), geo=Geo(lat, 18.0))).events
        assert ("geo" in event) is kept and ("[dropped geo.lat" in event["eventReason"]) is not kept, (lat, event)
        assert event.get("geo", {"lat": lat})["lat"] is lat  # the scan's own value, not an equal one from before


@pytest.mark.parametrize("change, member", [
    (dict(zone="Z" * 201), "zone"), (dict(stop_area="S" * 201), "stopArea"), (dict(mode_of_transport="m" * 51),
                                                                              "modeOfTransport"),
    (dict(validator=Validator("v" * 201)), "validator"), (dict(service=Service("s" * 201)), "service"),
    (dict(operator_pid=2 ** 60), "zone"), (dict(operator_pid=1234.0), "zone"), (dict(operator_pid=True), "zone"),
    (dict(geo=Geo(95.0, 18.0)), "geo"), (dict(geo=Geo(59.0, True)), "geo"), (dict(geo=Geo(59.0, 18.0, math.inf)), "geo"),
])
def test_a_place_that_changes_in_one_member_only_is_checked_again(engine, issuer_key, change, member):
    """Between two scans at a place the server takes, one member turns into one it refuses (and back)."""
    raw = signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket()])
    good = Context(time=NOW, validator=Validator("bus-1"), geo=Geo(59.0, 18.0), zone="A", stop_area="CEN",
                   mode_of_transport="bus", service=Service("17"), operator_pid=1234)
    for ctx, kept in ((good, True), (dataclasses.replace(good, **change), False), (good, True)):
        [event] = engine.validate_sync(raw, ctx).events
        assert (member in event) is kept and ("[dropped " in event["eventReason"]) is not kept, (change, event)
