"""The offline engine: every result code from real minted MTBs in a real SQLite cache."""
from __future__ import annotations

import os
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import mtb
from mtb import cbor, keys, signer
from agent.cache import Cache
from mtb.policy import Policy
from mtb.scan_context import Context, Geo, Validator
from agent.engine import Engine
from mtb.checks import Use

from .conftest import NOW, ticket

KDK = b"k" * 32
BUS = Validator("bus-17", "vehicle", "door 1")


def ctx(**overrides) -> Context:
    fields = dict(time=NOW, validator=BUS, zone="A", stop_area="SA1", mode_of_transport="bus",
                  geo=Geo(59.33, 18.06), operator_pid=1234)
    fields.update(overrides)
    return Context(**fields)


def issue(issuer_key, *tickets, **header) -> bytes:
    return signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=tickets or [ticket()], **header)


def phone(container: bytes, at=NOW, did="phone-1", kid="kdk-1", kdk=KDK) -> bytes:
    return signer.device_sign(container, did=did, kid=kid, device_key=keys.derive_device_key(kdk, did), at=at)


def code(engine, raw, **context) -> int:
    return engine.validate_sync(raw, ctx(**context)).event_result


def test_valid_ticket_is_0_and_recorded(engine, cache, issuer_key):
    decision = engine.validate_sync(issue(issuer_key, ticket(zones=["A"], modes=["bus"])), ctx())
    assert (decision.event_result, decision.colour) == (0, "green")
    [event] = decision.events
    assert event["ticketId"] == "T1" and event["eventType"] == "validation"
    assert event["mtbReference"]["pid"] == 1234
    assert event["zone"] == {"pid": 1234, "zoneId": "A"}
    assert event["stopArea"] == {"pid": 1234, "stopAreaId": "SA1"}
    assert event["validator"] == {"validatorId": "bus-17", "location": "vehicle", "sublocation": "door 1"}
    assert event["geo"] == {"lat": 59.33, "long": 18.06}
    assert event["operatingDayDate"] == "2026-03-02"
    assert [e.local_event_id for e in cache.outbox()] == [event["localEventId"]]


def test_unreadable_is_1_with_an_event(engine, cache):
    decision = engine.validate_sync(b"\x00garbage", ctx())
    assert decision.event_result == 1
    assert decision.events[0]["ticketId"].startswith("unreadable:")
    assert cache.outbox_count() == 1


def test_ticket_without_validity_is_1(engine, issuer_key):
    header = cbor.dumps({"alg": "ES256", "iid": "1234", "kid": "1234:k1", "miv": "1"})
    payload = cbor.dumps({"1234": [{"c_md": [{"tid": "X"}]}]})
    raw = mtb.container(mtb.body(header, payload, keys.es256_sign(issuer_key, mtb.signed_data(header, payload))))
    assert code(engine, raw) == 1


@pytest.mark.parametrize("overrides, context", [
    ({"zones": ["B"]}, {}),
    ({"stop_areas": ["SA9"]}, {}),
    ({"modes": ["train"]}, {}),
])
def test_spatial_is_2(engine, issuer_key, overrides, context):
    assert code(engine, issue(issuer_key, ticket(**overrides)), **context) == 2


def test_absent_lists_and_unknown_context_allow(engine, issuer_key):
    assert code(engine, issue(issuer_key, ticket(zones=["B"])), zone=None) == 0


@pytest.mark.parametrize("spec, header, reason", [
    ({"valid_until": NOW - timedelta(seconds=1)}, {}, "expired"),
    ({"valid_from": NOW + timedelta(minutes=1)}, {}, "valid from"),
    ({}, {"exp": NOW - timedelta(minutes=1)}, "signature expired"),
    ({}, {"nbf": NOW + timedelta(minutes=1)}, "not valid before"),
])
def test_time_is_3(engine, issuer_key, spec, header, reason):
    decision = engine.validate_sync(issue(issuer_key, ticket(**spec), **header), ctx())
    assert decision.event_result == 3 and reason in decision.event_reason


def test_device_conditions_are_4(engine, issuer_key):
    bound = issue(issuer_key, bind_device="phone-1", dsp=1234)
    assert code(engine, phone(bound)) == 0
    assert code(engine, mtb.container(mtb.decode(bound).issuer.body)) == 4  # stripped device layer
    assert code(engine, bound) == 4  # shown as issued, never device-signed
    assert code(engine, phone(bound, did="phone-2")) == 4  # another phone than it is bound to
    assert code(engine, phone(bound, at=NOW - timedelta(seconds=31))) == 4  # stale: a screenshot
    assert code(engine, phone(bound, at=NOW + timedelta(seconds=31))) == 4
    assert code(engine, phone(bound, at=NOW - timedelta(seconds=29)), validator=Validator("gate-1")) == 0


def test_stale_device_time_window_is_configurable(cache, issuer_key):
    engine = Engine(cache, Policy(device_time_window_s=120))
    try:
        assert engine.validate_sync(phone(issue(issuer_key), at=NOW - timedelta(seconds=90)), ctx()).event_result == 0
    finally:
        engine.close()


def test_issuer_signature_is_5(engine, issuer_key):
    other = keys.generate_es256_key()
    assert code(engine, issue(other)) == 5  # right kid, wrong key
    forged = signer.mint(issuer_key, pid=99, kid="1234:k1", tickets=[ticket()])
    assert code(engine, forged) == 5  # another participant's pid
    layer = mtb.decode(issue(issuer_key)).issuer
    swapped = cbor.dumps({"1234": [ticket("T-SWAPPED").to_cbor_map()]})
    assert code(engine, mtb.container(mtb.body(layer.header_bytes, swapped, layer.signature))) == 5


def test_device_signature_is_6(engine, issuer_key):
    assert code(engine, phone(issue(issuer_key), kdk=b"w" * 32)) == 6  # wrong key
    assert code(engine, phone(issue(issuer_key), kid="kdk-unknown")) == 6  # unknown KDK


def test_blacklist_is_7_and_expired_entries_do_not_block(engine, cache, issuer_key):
    raw = issue(issuer_key, ticket(traveller_id="trav-1"))
    cache.deny("ticket", "T1", NOW - timedelta(seconds=1))
    assert code(engine, raw) == 0
    cache.deny("ticket", "T1", NOW + timedelta(days=1))
    assert code(engine, raw, validator=Validator("gate-2")) == 7
    cache.deny("ticket", "T1", NOW - timedelta(days=1))  # a newer entry lifts it (thaw)
    assert code(engine, raw, validator=Validator("gate-3")) == 0
    cache.deny("traveller", "trav-1", NOW + timedelta(days=1))
    new_ticket = issue(issuer_key, ticket("T2", traveller_id="trav-1"))
    decision = engine.validate_sync(new_ticket, ctx(validator=Validator("gate-4")))
    assert decision.event_result == 7 and "traveller trav-1" in decision.event_reason
    cache.deny("token", "phone-9", NOW + timedelta(days=1))
    assert code(engine, phone(issue(issuer_key, ticket("T3")), did="phone-9")) == 7


def test_passback_is_8_inside_the_window_only(engine, issuer_key):
    raw = issue(issuer_key)
    assert code(engine, raw) == 0
    assert code(engine, raw, time=NOW + timedelta(seconds=599)) == 8
    assert code(engine, raw, validator=Validator("bus-18"), time=NOW + timedelta(seconds=60)) == 0  # another door
    assert code(engine, raw, time=NOW + timedelta(seconds=601)) == 0
    assert code(engine, raw, time=NOW + timedelta(seconds=650), mode="inspection") == 0  # inspection: no passback


def test_fraud_is_9_by_impossible_speed(engine, issuer_key):
    raw = issue(issuer_key, ticket(valid_until=NOW + timedelta(days=1)))
    assert code(engine, raw) == 0
    # Gothenburg, 400 km away, ten minutes later: 2400 km/h
    assert code(engine, raw, validator=Validator("tram-3"), geo=Geo(57.71, 11.97),
                time=NOW + timedelta(minutes=10)) == 9
    # the same trip in four hours is 100 km/h
    assert code(engine, raw, validator=Validator("tram-4"), geo=Geo(57.71, 11.97), time=NOW + timedelta(hours=4)) == 0


def test_order_first_failure_in_spec_order(engine, issuer_key):
    expired_wrong_zone = issue(issuer_key, ticket(valid_until=NOW - timedelta(hours=0.5), zones=["B"]))
    assert code(engine, expired_wrong_zone) == 3
    other = keys.generate_es256_key()
    assert code(engine, issue(other, ticket(valid_until=NOW - timedelta(hours=0.5)))) == 5


def test_bundle_one_event_per_ticket_and_first_failure(engine, cache, issuer_key):
    raw = issue(issuer_key, ticket("A1"), ticket("A2", zones=["Z"]), ticket("A3", valid_until=NOW - timedelta(1)))
    decision = engine.validate_sync(raw, ctx())
    assert [e["eventResult"] for e in decision.events] == [0, 2, 3]
    assert decision.event_result == 3  # 3 comes before 2 in the spec's order
    assert sorted(e.body["ticketId"] for e in cache.outbox()) == ["A1", "A2", "A3"]


def test_inspection_records_inspection_events(engine, cache, issuer_key):
    decision = engine.validate_sync(issue(issuer_key, ticket(product_id="P9", traveller_id="trav-7")),
                                    ctx(mode="inspection"))
    assert decision.events[0]["eventType"] == "inspection"
    assert "product P9" in decision.inspector_message and "traveller trav-7" in decision.inspector_message
    assert cache.outbox(event_type="inspection")[0].body["ticketId"] == "T1"


def test_outbox_survives_close_and_reopen(tmp_path, issuer_key):
    path = tmp_path / "device.db"
    cache = Cache(path)
    cache.import_metadata(keys.participant_metadata(1234, [keys.public_jwk(issuer_key, "1234:k1")]))
    engine = Engine(cache)
    ids = [engine.validate_sync(issue(issuer_key, ticket(f"T{i}")), ctx()).events[0]["localEventId"] for i in range(3)]
    ids.append(engine.validate_sync(os.urandom(50), ctx()).events[0]["localEventId"])
    engine.close()
    cache.close()
    reopened = Cache(path)
    assert [e.local_event_id for e in reopened.outbox()] == ids
    assert reopened.last_uses("T0", "bus-17")[0].ticket_id == "T0"
    assert reopened.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    reopened.close()


async def test_async_validate_runs_off_the_event_loop(engine, issuer_key):
    decision = await engine.validate(issue(issuer_key), ctx())
    assert decision.event_result == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_random_bytes_give_1_and_an_event(engine, cache, data):
    before = cache.outbox_count()
    decision = engine.validate_sync(data, ctx())
    assert (decision.event_result, decision.colour) == (1, "red")
    [event] = decision.events
    assert event["ticketId"].startswith("unreadable:") and event["eventResult"] == 1
    assert cache.outbox_count() == before + 1


def test_an_old_cache_is_migrated_with_its_data(tmp_path, issuer_key):
    import sqlite3

    import sqlite_utils

    from agent.cache import MIGRATIONS

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[0](sqlite_utils.Database(conn))  # a cache as the first release made it
    conn.execute("PRAGMA user_version=1")
    conn.execute("INSERT INTO outbox(local_event_id, event_type, body, created_at) VALUES ('e1', 'validation', '{}', 'x')")
    conn.execute("INSERT INTO deny_list(kind, value, expire, expire_epoch, server_id) "
                 "VALUES ('ticket', 'T-DENIED', '2026-04-01T00:00:00Z', 1775001600.0, 17)")
    conn.close()
    cache = Cache(path)
    try:
        assert cache.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert [e.local_event_id for e in cache.outbox()] == ["e1"]
        plan = cache.conn.execute("EXPLAIN QUERY PLAN SELECT * FROM usage WHERE ticket_id='T' AND result=0 "
                                  "ORDER BY epoch DESC LIMIT 50").fetchall()
        assert "ticket_id=? AND result=?" in plan[0][3]  # a ticket refused 10,000 times is still one seek
        deny_sql = cache.conn.execute("SELECT sql FROM sqlite_master WHERE name='deny_list'").fetchone()[0]
        assert deny_sql.endswith("WITHOUT ROWID")  # the key is the table: no autoindex beside it
        assert cache.conn.execute("SELECT count(*) FROM sqlite_master WHERE tbl_name='deny_list' "
                                  "AND type='index'").fetchone()[0] == 0
        assert cache.denied([("ticket", "T-DENIED")], NOW) == ("ticket", "T-DENIED") and cache.deny_high_water() == 0
    finally:
        cache.close()


def test_a_ticket_not_yet_activated_is_3(engine, issuer_key):
    decision = engine.validate_sync(issue(issuer_key, ticket(active=False)), ctx())
    assert (decision.event_result, decision.event_reason) == (3, "ticket not activated")
    assert code(engine, issue(issuer_key, ticket("T2", active=True)), validator=Validator("gate-2")) == 0


def test_a_scans_one_lookup_answers_what_the_separate_lookups_answer(cache):
    """Cache.scan_facts (last use anywhere, last validation here, first deny hit: one statement)
    against Cache.last_uses and Cache.denied, over used, refused, denied, expired and unknown ids."""
    cache.record([], [Use("T1", NOW - timedelta(minutes=m), mode, result, device, None, "A", 59.3, 18.0)
                      for m, mode, result, device in ((50, "validation", 0, "bus-17"), (40, "validation", 0, "gate-2"),
                                                      (30, "inspection", 0, "bus-17"), (20, "validation", 8, "bus-17"),
                                                      (10, "validation", 0, "gate-9"))])
    cache.deny("traveller", "trav-1", NOW + timedelta(days=1))
    cache.deny("token", "phone-1", NOW - timedelta(seconds=1))  # expired
    cache.deny("ticket", "T2", NOW + timedelta(days=1))
    for ticket_id, device in (("T1", "bus-17"), ("T1", "gate-2"), ("T1", "tram-3"), ("T2", "bus-17")):
        for candidates in ([("ticket", ticket_id)], [("ticket", ticket_id), ("traveller", "trav-1")],
                           [("ticket", ticket_id), ("token", "phone-1")], [("token", "phone-1"), ("traveller", "trav-1")]):
            found = cache.scan_facts(ticket_id, device, candidates, NOW)
            assert (found.last, found.here) == cache.last_uses(ticket_id, device)
            assert found.denied == cache.denied(candidates, NOW)
    found = cache.scan_facts("T1", "bus-17", [("ticket", "T1")], NOW)
    assert (found.last.device_id, found.last.time, found.here.time, found.denied) == (
        "gate-9", NOW - timedelta(minutes=10), NOW - timedelta(minutes=50), None)
    assert cache.scan_facts("T1", "bus-17", [("traveller", "trav-1"), ("ticket", "T2")], NOW).denied == (
        "traveller", "trav-1")
