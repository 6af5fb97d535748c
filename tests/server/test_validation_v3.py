"""BoB's Validation API 3.0 beyond event ingest, over real HTTP: TICKLE macro sets, the fraud
check (fast and slow, once per event and client), online validation (the server decides with
the MTB), and BoB's own event forms (ISO 8601 basic times, events without a result)."""
from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

import mtb
from mtb import keys, signer
from mtb.timeutil import format_basic, parse_time, utcnow

from .conftest import PID
from .test_events import val2_token

ROOT = Path(__file__).resolve().parents[2]


def signature() -> str:
    return mtb.b64url_encode(os.urandom(32))


# --- TICKLE macro sets ----------------------------------------------------------------------------

async def test_tickle_macro_sets_from_the_data_directory(api, deployment):
    path = deployment.data_dir / "tickle-macros.json"
    assert (await api.get("/ticklemacros", role="val")).status == 404  # none published
    shutil.copyfile(ROOT / "deploy" / "bob-conformance" / "tickle-macros.json", path)
    try:
        every = await api.get("/ticklemacros", role="val")
        assert every.status == 200 and [s["serial"] for s in every.body] == [1, 2]
        for serial in (1, 2):
            one = await api.get(f"/ticklemacros/{serial}", role="ins")
            assert one.status == 200 and set(one.body) == {"pid", "serial", "macros"}  # just these three
            assert one.body["serial"] == serial and one.body == every.body[serial - 1]
            assert all({"name", "condition"} <= set(m) for m in one.body["macros"])
        for missing in ("3", "x", "-1", "\u0661"):
            reply = await api.get(f"/ticklemacros/{missing}", role="val")
            assert reply.status == 404 and reply.body["code"] == "tickle_not_found"
        # a new version is a new serial; a broken file keeps the last good sets
        sets = json.loads(path.read_text()) + [{"pid": PID, "serial": 3, "macros": []}]
        path.write_text(json.dumps(sets))
        os.utime(path, ns=(1, path.stat().st_mtime_ns + 1_000_000))
        assert (await api.get("/ticklemacros/3", role="val")).body == {"pid": PID, "serial": 3, "macros": []}
        path.write_text(json.dumps(sets + [sets[0]]))  # serial 1 twice
        os.utime(path, ns=(1, path.stat().st_mtime_ns + 2_000_000))
        assert [s["serial"] for s in (await api.get("/ticklemacros", role="val")).body] == [1, 2, 3]
    finally:
        path.unlink()


# --- fraud check ----------------------------------------------------------------------------------

LERUM = {"lat": 57.770351, "long": 12.255959}
GOTHENBURG = {"lat": 57.708074, "long": 11.973297}  # 18 km away
LERUM_NEARBY = {"lat": 57.7701897, "long": 12.2677485}  # 0.7 km away


async def sighting(api, reference: dict, geo: dict, time: str) -> None:
    event = {"eventType": "validation", "ticketId": "T-fraud", "mtbReference": reference, "time": time,
             "modeOfTransport": "bus", "geo": geo}  # no localEventId, no eventResult: as BoB's client sends
    reply = await api.post("/validation/T-fraud", event, role="val")
    assert reply.status == 201, reply
    assert "ticketEventStatus" not in reply.body  # nobody decided it: not claimed valid


async def fraudcheck(api, body: dict | None = None, **kw) -> object:
    if body is None:
        return await api.get("/fraudcheck", role=kw.pop("role", "val"), **kw)
    return await api.call("GET", "/fraudcheck", json_body=body, **{"role": "val", **kw})


async def test_fraudcheck_fast_is_a_velocity_no_bus_makes(api):
    reference = {"pid": 1, "issuerSignature": signature()}
    await sighting(api, reference, LERUM, "20170521T200000Z")
    reply = await fraudcheck(api, {"time": "20170521T201000Z", "geo": GOTHENBURG, "mtbReference": reference})
    assert reply.status == 200, reply
    assert 100 < reply.body["velocity"] < 120  # 18.15 km in 10 minutes: 108.9 km/h


async def test_fraudcheck_slow_or_near_is_zero(api):
    reference = {"pid": 1, "issuerSignature": signature()}
    await sighting(api, reference, LERUM, "2017-05-21T20:00:00Z")
    near = await fraudcheck(api, {"time": "20170521T200500Z", "geo": LERUM_NEARBY, "mtbReference": reference})
    assert near.status == 200 and near.body == {"velocity": 0.0}  # 0.7 km: under the 1 km floor
    other = {"pid": 1, "issuerSignature": signature()}
    await sighting(api, other, LERUM, "2017-05-21T20:00:00Z")
    slow = await fraudcheck(api, {"time": "20170522T000000Z", "geo": GOTHENBURG, "mtbReference": other})
    assert slow.body == {"velocity": 0.0}  # 18 km in 4 hours: 4.5 km/h, under the 5 km/h floor
    third = {"pid": 1, "issuerSignature": signature()}
    await sighting(api, third, LERUM, "2017-05-21T20:00:00Z")
    walked = await fraudcheck(api, {"time": "20170521T230000Z", "geo": GOTHENBURG, "mtbReference": third})
    assert 5 < walked.body["velocity"] < 7  # 18 km in 3 hours: 6 km/h is an answer, not noise

async def test_fraudcheck_answers_once_per_event_and_client(api, deployment):
    reference = {"pid": 1, "issuerSignature": signature()}
    await sighting(api, reference, LERUM, "20170521T200000Z")
    query = {"time": "20170521T201000Z", "geo": GOTHENBURG, "mtbReference": reference}
    assert (await fraudcheck(api, query)).status == 200
    again = await fraudcheck(api, query)
    assert again.status == 403 and again.body["code"] == "already_answered"
    other_client = await fraudcheck(api, query, token=val2_token(deployment), role=None)
    assert other_client.status == 200
    # a new sighting is a new event: this client may ask about it
    await sighting(api, reference, GOTHENBURG, "20170521T201500Z")
    assert (await fraudcheck(api, {**query, "time": "20170521T201600Z"})).status == 200


async def test_fraudcheck_by_query_parameters_and_without_sighting(api):
    reference = {"pid": 1, "issuerSignature": signature()}
    unknown = await fraudcheck(api, params={"lat": "57.7", "long": "12.2", "pid": "1",
                                            "issuerSignature": reference["issuerSignature"]})
    assert unknown.status == 200 and unknown.body == {"velocity": 0.0}  # the server never saw it
    await sighting(api, reference, LERUM, "20170521T200000Z")
    reply = await fraudcheck(api, params={"time": "2017-05-21T20:10:00Z", "lat": str(GOTHENBURG["lat"]),
                                          "long": str(GOTHENBURG["long"]), "pid": "1",
                                          "issuerSignature": reference["issuerSignature"]})
    assert reply.status == 200 and reply.body["velocity"] > 100


@pytest.mark.parametrize("body,field", [
    ({"geo": LERUM}, "mtbReference"),
    ({"mtbReference": {"pid": 1, "issuerSignature": "x"}}, "geo"),
    ({"mtbReference": {"pid": 1, "issuerSignature": "x"}, "geo": {"lat": 91.0, "long": 0.0}}, "geo.lat"),
    ({"mtbReference": {"pid": 1, "issuerSignature": "x"}, "geo": LERUM, "time": "XYZZY"}, "time"),
])
async def test_bad_fraudcheck_queries_name_the_member(api, body, field):
    reply = await fraudcheck(api, body)
    assert reply.status in (400, 422), reply
    assert reply.body["details"][0]["field"] == field


# --- online validation ----------------------------------------------------------------------------

def now_basic(delta: timedelta = timedelta(0)) -> str:
    return format_basic(utcnow() + delta)


def scan(ticket_id: str, **extra) -> dict:
    return {"eventType": "validation", "ticketId": ticket_id, "time": now_basic(), "localEventId": uuid.uuid4().hex,
            "zone": {"pid": PID, "zoneId": "A"}, "modeOfTransport": "bus", **extra}


async def online(api, ticket_id: str, barcode: str, **extra) -> object:
    reply = await api.post(f"/validation/{ticket_id}", scan(ticket_id, **extra), role="val", params={"mtb": barcode})
    assert reply.status == 201, reply
    return reply


async def issued(api, traveller: str = "trav-online") -> tuple[str, str]:
    reply = await api.issue(traveller, issueMtb=True)
    assert reply.status == 201, reply
    return reply.body["ticketIds"][0], reply.body["ticketBundle"]["mtb"]


async def test_online_validation_decides_and_stores_the_verdict(api):
    ticket_id, barcode = await issued(api)
    reply = await online(api, ticket_id, barcode)
    assert reply.body["ticketEventStatus"] == 0
    stored = reply.body["ticketEvent"]
    assert stored["eventResult"] == 0 and stored["eventReason"] == "valid"
    decoded = mtb.decode(barcode)
    assert stored["mtbReference"] == {"pid": PID, "issuerSignature": mtb.b64url_encode(decoded.issuer.signature)}
    listed = await api.get(f"/ticket/{ticket_id}/event", role="pos")
    assert [e["ticketEventStatus"] for e in listed.body] == [0]


async def test_online_validation_refusals(api, deployment):
    ticket_id, barcode = await issued(api)
    assert (await online(api, ticket_id, barcode, zone={"pid": PID, "zoneId": "C"})).body["ticketEventStatus"] == 2
    assert (await online(api, ticket_id, barcode, modeOfTransport="ferry")).body["ticketEventStatus"] == 2
    late = await online(api, ticket_id, barcode, time=now_basic(timedelta(hours=3)))
    assert late.body["ticketEventStatus"] == 3 and "expired" in late.body["ticketEvent"]["eventReason"]
    assert (await online(api, ticket_id, "not an mtb!")).body["ticketEventStatus"] == 1
    other_id, _ = await issued(api)
    assert (await online(api, other_id, barcode)).body["ticketEventStatus"] == 1  # the MTB is not that ticket's
    now = utcnow()
    spec = signer.TicketSpec(ticket_id, now - timedelta(hours=1), now + timedelta(hours=1), zones=["A"])
    forged = signer.mint(keys.generate_es256_key(), pid=PID, kid=f"{PID}:issuer-1", tickets=[spec])
    assert (await online(api, ticket_id, mtb.wrap_transport(forged, "base64url"))).body["ticketEventStatus"] == 5
    await api.put(f"/ticket/{ticket_id}/revoke", role="pos")
    revoked = await online(api, ticket_id, barcode)
    assert revoked.body["ticketEventStatus"] == 7 and "deny list" in revoked.body["ticketEvent"]["eventReason"]


async def test_online_validation_of_a_device_signed_ticket(api):
    ticket_id, barcode = await issued(api)
    wallet = (await api.post("/device/key", {"did": "phone-online"}, role="pos")).body
    device_key = mtb.b64url_decode(wallet["deviceKey"])
    live = signer.device_sign(barcode, did="phone-online", kid=wallet["kid"], device_key=device_key, at=utcnow())
    assert (await online(api, ticket_id, mtb.wrap_transport(live, "zlib+base64url"))).body["ticketEventStatus"] == 0
    old = signer.device_sign(barcode, did="phone-online", kid=wallet["kid"], device_key=device_key,
                             at=utcnow() - timedelta(minutes=5))
    assert (await online(api, ticket_id, mtb.wrap_transport(old, "base64url"))).body["ticketEventStatus"] == 4
    wrong = signer.device_sign(barcode, did="phone-online", kid=wallet["kid"], device_key=os.urandom(16), at=utcnow())
    assert (await online(api, ticket_id, mtb.wrap_transport(wrong, "base64url"))).body["ticketEventStatus"] == 6


async def test_online_validation_catches_a_copied_ticket(api):
    ticket_id, barcode = await issued(api)
    first = await online(api, ticket_id, barcode, geo=LERUM)
    assert first.body["ticketEventStatus"] == 0
    copy = await online(api, ticket_id, barcode, geo=GOTHENBURG, time=now_basic(timedelta(minutes=2)))
    assert copy.body["ticketEventStatus"] == 9  # 18 km in 2 minutes


async def test_an_event_with_its_result_is_stored_as_reported(api):
    ticket_id, barcode = await issued(api)
    reply = await api.post(f"/validation/{ticket_id}", scan(ticket_id, eventResult=8, eventReason="passback"),
                           role="val", params={"mtb": "whatever"})
    assert reply.status == 201 and reply.body["ticketEventStatus"] == 8  # offline: the device decided


# --- BoB's own event forms ------------------------------------------------------------------------

BOB_EVENTS = [  # what BoB clients send: ISO 8601 basic times and dates, free-text mode, no localEventId
    {"time": "19730614T220000+0200"},
    {"time": "19730614T220000Z"},
    {"time": "20260302T083000Z", "localEventId": "L-basic", "eventResult": 0},
    {"time": "20260302T083000Z", "eventResult": 1, "eventReason": "unknown reason",
     "mtbReference": {"pid": 1, "issuerSignature": "c2ln"}, "deviceReference": {"pid": 1, "did": "ZGlk"},
     "geo": {"lat": 57.770351, "long": 12.255959}, "modeOfTransport": "camel", "zone": {"pid": 1, "zoneId": "1337"},
     "service": {"pid": 1, "serviceId": "1", "tripId": "2", "blockId": "3"},
     "stopArea": {"pid": 1, "stopAreaId": "1", "nextStopAreaId": "2"},
     "validator": {"validatorId": "v", "location": "l", "sublocation": "s"}, "operatingDayDate": "20170101"},
]


@pytest.mark.parametrize("kind,role", [("validation", "val"), ("inspection", "ins")])
async def test_bob_basic_form_events_are_taken_one_by_one_and_in_a_batch(api, kind, role):
    ticket_id = f"T-bob-{uuid.uuid4().hex[:8]}"
    for extra in BOB_EVENTS:
        event = {"eventType": kind, "ticketId": ticket_id, **extra}
        if "localEventId" in event:
            event["localEventId"] += uuid.uuid4().hex
        reply = await api.post(f"/{kind}/{ticket_id}", event, role=role)
        assert reply.status == 201, (extra, reply)
        assert parse_time(reply.body["ticketEvent"]["time"]) == parse_time(extra["time"])
    batch = [{"eventType": kind, "ticketId": ticket_id, **extra} for extra in BOB_EVENTS]
    batch[2]["localEventId"] += uuid.uuid4().hex
    reply = await api.post(f"/{kind}", batch, role=role)
    assert reply.status == 200 and reply.text == ""  # BoB: 200, no body
    listed = await api.get(f"/ticket/{ticket_id}/event", role="admin")
    assert len(listed.body) == 2 * len(BOB_EVENTS)
