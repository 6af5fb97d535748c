"""Stored data true to the server's own schema (issue 11.3): ticketEvents validated and
normalised before they are stored, unknown members capped, whole numbers as integers, query
integers, Content-Type, the deny-list pages like every other list."""
from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from .conftest import PID, Api, Deployment, event


def uid() -> str:
    return uuid.uuid4().hex[:12]


def stored_body(d: Deployment, event_id: str) -> dict[str, Any]:
    return json.loads(d.rows("SELECT body FROM events WHERE id = ?", (int(event_id),))[0][0])


def event_ids(d: Deployment, *lids: str) -> list[int]:
    """The server's eventIds of events posted by val1 (a batch answers 200 without a body)."""
    return [d.rows("SELECT id FROM events WHERE sub = 'val1' AND local_event_id = ?", (lid,))[0][0] for lid in lids]


def count_events(d: Deployment) -> int:
    return d.rows("SELECT count(*) AS n FROM events")[0][0]


@pytest.mark.parametrize("sent,served", [
    ("20170521T200000Z", "2017-05-21T20:00:00.000Z"),  # ISO 8601 basic, as BoB sends it
    ("19730614T220000+0200", "1973-06-14T20:00:00.000Z"),
    ("20170521T200000.25-0130", "2017-05-21T21:30:00.250Z"),
    ("20170521T200000+02", "2017-05-21T18:00:00.000Z"),
    ("2017-05-21T20:00:00Z", "2017-05-21T20:00:00.000Z"),  # extended
    ("2017-05-21T20:00:00.123456789+02:00", "2017-05-21T18:00:00.123Z"),
    ("2017-05-21T20:00:00,5-05:00", "2017-05-22T01:00:00.500Z"),
])
async def test_basic_and_extended_times_are_stored_as_one_utc_form(api, deployment, sent, served):
    tid, lid = f"T-time-{uid()}", uid()
    reply = await api.post("/validation", [event(tid, lid, time=sent, operatingDayDate="20170101")], role="val")
    assert reply.status == 200, reply
    [event_id] = event_ids(deployment, lid)
    body = stored_body(deployment, event_id)
    assert body["time"] == served and body["operatingDayDate"] == "2017-01-01"
    listed = await api.get(f"/ticket/{tid}/event", role="admin")
    assert listed.body[0]["ticketEvent"]["time"] == served
    assert listed.body[0]["ticketEvent"]["operatingDayDate"] == "2017-01-01"
    one = await api.get(f"/ticket/{tid}/event/{event_id}", role="admin")
    assert one.body["ticketEvent"]["time"] == served


async def test_time_query_order_follows_the_normalised_times(api):
    tid = f"T-order-{uid()}"
    # 20:00+02:00 is 18:00Z, earlier than 19:00Z though its text sorts later
    batch = [event(tid, uid(), time="20170521T200000+0200"), event(tid, uid(), time="2017-05-21T19:00:00Z")]
    assert (await api.post("/validation", batch, role="val")).status == 200
    listed = await api.get(f"/ticket/{tid}/event", role="admin", params={"sortField": "time", "sortOrder": "asc"})
    assert [r["ticketEvent"]["time"] for r in listed.body] == ["2017-05-21T18:00:00.000Z", "2017-05-21T19:00:00.000Z"]


@pytest.mark.parametrize("bad,field", [
    ({"operatingDayDate": 0}, "operatingDayDate"),
    ({"operatingDayDate": "2017-1-1"}, "operatingDayDate"),
    ({"operatingDayDate": "2017-0101"}, "operatingDayDate"),
    ({"time": "946684800"}, "time"),  # unix seconds as text
    ({"time": 946684800}, "time"),
    ({"time": "2000-01-01 00:00:00Z"}, "time"),  # a space for the T
    ({"time": "2017-05-21T20:00:00+0100"}, "time"),  # extended with a basic offset
    ({"time": "20170521T200000+01:00"}, "time"),  # basic with an extended offset
    ({"time": "20170521T20:00:00Z"}, "time"),
    ({"time": "2017-05-21T20:00Z"}, "time"),  # no seconds
    ({"time": "2017-05-21T20:00:00"}, "time"),  # no zone
    ({"time": "2017-02-30T00:00:00Z"}, "time"),
    ({"time": "2017-05-21T20:00:00+24:00"}, "time"),
    ({"eventResult": 6.5}, "eventResult"),
    ({"eventResult": True}, "eventResult"),
    ({"eventResult": "6"}, "eventResult"),
    ({"mtbReference": {"pid": 12.5, "issuerSignature": "x"}}, "mtbReference.pid"),
])
async def test_values_the_schema_forbids_are_400_naming_the_field(api, deployment, bad, field):
    before = count_events(deployment)
    batch = [event("T-bad", uid()), event("T-bad", uid(), **bad)]
    reply = await api.post("/validation", batch, role="val")
    assert reply.status == 400, (bad, reply)
    assert reply.body["code"] == "malformed_event" and reply.body["details"][0]["field"] == f"[1].{field}"
    single = await api.post("/validation/T-bad", event("T-bad", uid(), **bad), role="val")
    assert single.status == 400 and single.body["details"][0]["field"] == field, single
    assert count_events(deployment) == before


async def test_whole_numbers_are_integers_where_the_schema_says_integer(api, deployment):
    tid, lid = f"T-whole-{uid()}", uid()
    sent = event(tid, lid, eventResult=6.0, mtbReference={"pid": float(PID), "issuerSignature": "c2ln"},
                 zone={"pid": 1234.0, "zoneId": "A"})
    reply = await api.post("/validation", [sent], role="val")
    assert reply.status == 200, reply
    body = stored_body(deployment, *event_ids(deployment, lid))
    assert body["eventResult"] == 6 and isinstance(body["eventResult"], int)
    assert body["mtbReference"]["pid"] == PID and isinstance(body["mtbReference"]["pid"], int)
    served = (await api.get(f"/ticket/{tid}/event", role="admin")).text
    assert '"eventResult":6,' in served and '"pid":1234,' in served and "6.0" not in served
    bound = await api.issue("trav-whole", tokenIssuer=77.0, tokenPublicKey={
        "kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})
    assert bound.status == 201, bound  # tokenIssuer 77.0 is the integer 77


async def test_unknown_members_are_kept_only_under_a_small_cap(api, deployment):
    tid = f"T-extra-{uid()}"
    small = event(tid, uid(), vendor={"firmware": "1.2.3"}, geo={"lat": 55.6, "long": 13.0, "junk": "x" * 100})
    big = event(tid, uid(), vendor={"firmware": "1.2.3"}, junk="x" * 3_900_000)
    reply = await api.post("/validation", [small, big], role="val")
    assert reply.status == 200, reply  # the dropped names go to the log: BoB's answer has no body
    kept_body, dropped_body = (stored_body(deployment, i) for i in event_ids(deployment, small["localEventId"],
                                                                              big["localEventId"]))
    assert kept_body["vendor"] == {"firmware": "1.2.3"} and "junk" not in kept_body["geo"]
    assert "junk" not in dropped_body and "vendor" not in dropped_body and dropped_body["ticketId"] == tid
    assert len(json.dumps(dropped_body)) < 2000
    served = await api.get(f"/ticket/{tid}/event", role="admin")
    assert len(served.text) < 10_000


async def test_ticket_id_may_be_left_out_of_a_single_event_and_the_document_says_so(api):
    doc = (await api.get("/openapi.json", role=None)).body
    for op in ("/validation/{ticketId}", "/inspection/{ticketId}"):
        ref = doc["paths"][op]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert "ticketId" not in schema.get("required", []) and "time" in schema["required"]
    batch = doc["components"]["schemas"]["ValidationEvent"]
    assert "ticketId" in batch["required"]
    reply = await api.post("/validation/T-no-id", {"time": "20170521T200000Z", "localEventId": uid()}, role="val")
    assert reply.status == 201 and reply.body["ticketEvent"]["ticketId"] == "T-no-id"


async def test_a_single_event_answer_lists_only_the_newest_event_ids(api):
    tid = await api.ticket_id("trav-busy")
    batch = [event(tid, uid()) for _ in range(45)]
    assert (await api.post("/validation", batch, role="val")).status == 200
    ids = [str(i) for i in event_ids(api.d, *(e["localEventId"] for e in batch))]
    reply = await api.post(f"/validation/{tid}", event(tid, uid()), role="val")
    assert reply.status == 201
    listed = reply.body["ticketMetadata"]["ticketEventIds"]
    assert len(listed) == 20 and listed == ids[-19:] + [reply.body["ticketEvent"]["eventId"]]
    one = await api.get(f"/ticket/{tid}/event/{ids[0]}", role="admin")
    assert len(one.body["ticketMetadata"]["ticketEventIds"]) == 20
    every = await api.get(f"/ticket/{tid}/event", role="admin", params={"limit": "100"})
    assert every.headers["X-Total-Count"] == "46"


@pytest.mark.parametrize("path,params", [
    ("/blacklist", {"limit": ""}), ("/blacklist", {"blacklistEntryId": ""}), ("/blacklist", {"pageSize": ""}),
    ("/ticket", {"travellerId": "x", "limit": ""}), ("/ticket", {"travellerId": "x", "offset": ""}),
    ("/ticket", {"travellerId": "x", "pid": ""}), ("/ticket", {"travellerId": "x", "page": ""}),
])
async def test_empty_integer_query_parameters_are_400(api, path, params):
    reply = await api.get(path, role="ins", params=params)
    assert reply.status == 400 and reply.body["details"][0]["field"] == next(iter(p for p in params if not params[p]))


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml"])
async def test_a_body_that_is_not_declared_json_is_415(api, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    for method, path, role, body in (("POST", "/validation", "val", [event("T-ct", uid())]),
                                     ("POST", "/validation/T-ct", "val", event("T-ct", uid())),
                                     ("POST", "/manifest", "pos", {"productSelections": [{"productId": "single-2h"}]}),
                                     ("PUT", "/ticket/T-ct/active", "pos", True)):
        reply = await api.call(method, path, role=role, data=json.dumps(body).encode(), headers=headers)
        assert reply.status == 415, (method, path, content_type, reply)
        assert reply.body["code"] == "unsupported_media_type"


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "application/vnd.bob+json"])
async def test_json_content_types_are_accepted(api, content_type):
    reply = await api.call("POST", "/validation", role="val", data=json.dumps([event("T-ct", uid())]).encode(),
                           headers={"Content-Type": content_type})
    assert reply.status == 200, reply


async def test_the_deny_list_pages_like_every_other_list(make_server):
    import aiohttp
    d = make_server()
    async with aiohttp.ClientSession() as session:
        api = Api(d, session)
        tids = [await api.ticket_id(f"trav-deny-{i}") for i in range(3)]
        for tid in tids:
            assert (await api.put(f"/ticket/{tid}/revoke", role="pos")).status == 200
        from server.store import DenyEntry
        from datetime import datetime, timedelta, timezone
        store = d.store()
        try:
            later = datetime.now(timezone.utc) + timedelta(days=1)
            for i in range(250):
                store.add_deny(DenyEntry(expire=later, ticket_id=f"T-bulk-{i}"))
        finally:
            store.close()
        first = await api.get("/blacklist", role="pos")
        assert first.status == 200 and len(first.body) == 100 and first.headers["X-Total-Count"] == "253"
        assert 'rel="next"' in first.headers["Link"] and "offset=100" in first.headers["Link"]
        ids = [e["blacklistEntryId"] for e in first.body]
        assert ids == sorted(ids)
        assert (await api.get("/blacklist", role="pos", params={"limit": "101"})).status == 400
        assert (await api.get("/blacklist", role="admin", params={"pageSize": "500"})).status == 400
        device = await api.get("/blacklist", role="val", params={"limit": "1000"})
        assert device.status == 200 and len(device.body) == 253 and "Link" not in device.headers
        after = await api.get("/blacklist", role="ins", params={"blacklistEntryId": str(ids[-1]), "pageSize": "50",
                                                                "page": "2"})
        assert [e["blacklistEntryId"] for e in after.body] == [e["blacklistEntryId"] for e in device.body][150:200]
        newest = await api.get("/blacklist", role="tvm", params={"sortOrder": "desc", "limit": "5"})
        assert [e["blacklistEntryId"] for e in newest.body] == [e["blacklistEntryId"] for e in device.body][::-1][:5]
        assert (await api.get("/blacklist", role="val", params={"sortField": "expire"})).status == 400
        assert (await api.get("/blacklist", role="val", params={"limit": "10001"})).status == 400
