"""Device event ingest: POST /validation, /inspection (batches, all or nothing, dedupe),
the single-event forms (201 + Location, 303 on a repeat) and the events under a ticket."""
from __future__ import annotations

import uuid

import pytest

from .conftest import PID


def count_rows(deployment, sql: str = "SELECT count(*) AS n FROM events", params=()) -> int:
    return deployment.rows(sql, params)[0][0]


def uid() -> str:
    return uuid.uuid4().hex[:12]


def stored_ids(deployment, sub: str, lids) -> dict[str, int]:
    """The server's eventId of each (credential, localEventId) stored."""
    marks = ",".join("?" * len(lids))
    return dict(deployment.rows(f"SELECT local_event_id, id FROM events WHERE sub = ? AND local_event_id IN ({marks})",
                                [sub, *lids]))


async def test_batch_ingest_is_200_without_body_and_idempotent(api, deployment, make_event):
    prefix = uid()
    batch = [make_event(f"T-{prefix}-{i % 3}", f"{prefix}-{i}") for i in range(10)]
    before = count_rows(deployment)
    first = await api.post("/validation", batch, role="val")
    assert first.status == 200 and first.text == "", first  # BoB: 200, no body, all or nothing
    ids = stored_ids(deployment, "val1", [e["localEventId"] for e in batch])
    assert len(ids) == 10 and len(set(ids.values())) == 10
    assert count_rows(deployment) == before + 10

    second = await api.post("/validation", batch, role="val")
    assert second.status == 200
    assert stored_ids(deployment, "val1", list(ids)) == ids
    assert count_rows(deployment) == before + 10

    # half old, half new: only the new ones are stored; in-batch repeats are stored once
    mixed = batch[5:] + [make_event(f"T-{prefix}-0", f"{prefix}-new-{i}") for i in range(3)]
    mixed.append(make_event(f"T-{prefix}-0", f"{prefix}-new-0"))
    third = await api.post("/validation", mixed, role="val")
    assert third.status == 200
    assert count_rows(deployment) == before + 13
    assert len(stored_ids(deployment, "val1", [e["localEventId"] for e in mixed])) == 8


async def test_dedupe_is_per_device_credential(api, deployment, make_event):
    lid = uid()
    a = await api.post("/validation", [make_event("T-x", lid)], role="val")
    b = await api.post("/validation", [make_event("T-x", lid)], token=val2_token(deployment))
    assert a.status == b.status == 200
    assert stored_ids(deployment, "val1", [lid])[lid] != stored_ids(deployment, "val2", [lid])[lid]


def val2_token(deployment) -> str:
    import json
    import urllib.request
    request = urllib.request.Request(deployment.url("/auth/val2"), headers={"Authorization": deployment.basic("val2")})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["jwtCompact"]


@pytest.mark.parametrize("bad,field", [
    ({"time": "yesterday"}, "time"),
    ({"time": "2026-03-02T08:30:00"}, "time"),  # no zone
    ({"eventResult": "0"}, "eventResult"),
    ({"eventResult": 12}, "eventResult"),
    ({"ticketId": 42}, "ticketId"),
    ({"ticketId": ""}, "ticketId"),
    ({"geo": {"lat": 123.0, "long": 13.0}}, "geo.lat"),
    ({"geo": {"lat": "55", "long": 13.0}}, "geo.lat"),
    ({"deviceReference": {"did": "x"}}, "deviceReference.pid"),
    ({"stopArea": {"pid": PID}}, "stopArea.stopAreaId"),
    ({"eventType": "purchase"}, "eventType"),
    ({"eventType": "inspection"}, "eventType"),  # an inspection posted to /validation
    ({"operatingDayDate": "monday"}, "operatingDayDate"),
    ({"mtbReference": "sig"}, "mtbReference"),
])
async def test_one_bad_event_rejects_the_batch_and_names_index_and_field(api, deployment, make_event, bad, field):
    prefix = uid()
    batch = [make_event("T-1", f"{prefix}-{i}") for i in range(5)]
    batch[3].update(bad)
    before = count_rows(deployment)
    reply = await api.post("/validation", batch, role="val")
    assert reply.status == 400, reply
    assert reply.body["details"][0]["field"] == f"[3].{field}", reply.body
    assert "[3]" in reply.body["message"]
    assert count_rows(deployment) == before


async def test_missing_required_members_name_the_field(api, make_event):
    event = make_event("T-1", uid())
    del event["time"]
    reply = await api.post("/validation", [event], role="val")
    assert reply.status == 400 and reply.body["details"][0]["field"] == "[0].time"
    assert reply.body["details"][0]["index"] == 0


async def test_unknown_members_and_foreign_tickets_are_stored(api, make_event):
    event = make_event("T-foreign-issuer-77", uid(), vendorExtension={"x": 1}, eventId="client-chosen")
    reply = await api.post("/validation", [event], role="val")
    assert reply.status == 200
    listed = await api.get("/ticket/T-foreign-issuer-77/event", role="admin")
    assert listed.status == 200
    stored = [r for r in listed.body if r["ticketEvent"]["localEventId"] == event["localEventId"]][0]
    assert stored["ticketEvent"]["vendorExtension"] == {"x": 1}
    [event_id] = stored_ids(api.d, "val1", [event["localEventId"]]).values()
    assert stored["ticketEvent"]["eventId"] == str(event_id)  # the server's id, not the client's
    assert stored["ticketEventStatus"] == 0


async def test_minimal_event_and_empty_batch(api):
    before = count_rows(api.d)
    reply = await api.post("/inspection", [{"ticketId": "T-min", "time": "2026-03-02T08:30:00+01:00"}], role="ins")
    assert reply.status == 200 and count_rows(api.d) == before + 1
    empty = await api.post("/inspection", [], role="ins")
    assert empty.status == 200 and count_rows(api.d) == before + 1


@pytest.mark.parametrize("body", [{"ticketId": "x"}, "events", 5, None])
async def test_batch_body_must_be_an_array(api, body):
    reply = await api.call("POST", "/validation", role="val", data="null" if body is None else None,
                           json_body=body, headers={"Content-Type": "application/json"})
    assert reply.status == 400 and reply.body["details"][0]["field"] == "(body)"


async def test_oversized_batch_is_413(api, deployment, make_event):
    batch = [make_event("T-big", f"big-{i}") for i in range(deployment.config.max_batch_events + 1)]
    before = count_rows(deployment)
    reply = await api.post("/validation", batch, role="val")
    assert reply.status == 413 and reply.body["code"] == "batch_too_large"
    assert count_rows(deployment) == before


async def test_single_event_201_with_location_then_303(api, make_event):
    tid = await api.ticket_id("trav-events")
    event = make_event(tid, uid())
    del event["ticketId"]  # taken from the path
    first = await api.post(f"/validation/{tid}", event, role="val")
    assert first.status == 201, first
    event_id = first.body["ticketEvent"]["eventId"]
    assert first.headers["Location"] == api.d.url(f"/ticket/{tid}/event/{event_id}")  # absolute
    assert first.body["ticketEventStatus"] == 0
    assert first.body["ticketMetadata"]["ticketEventIds"] == [event_id]
    assert first.body["ticketEvent"]["ticketId"] == tid and first.body["ticketEvent"]["eventType"] == "validation"

    again = await api.post(f"/validation/{tid}", event, role="val")
    assert again.status == 303 and again.headers["Location"] == first.headers["Location"]
    # the validator may follow the redirect to its own event
    followed = await api.get(first.headers["Location"][len(api.d.base):], role="val")
    assert followed.status == 200 and followed.body["ticketEvent"]["eventId"] == event_id
    # another validator may not read it
    assert (await api.get(f"/ticket/{tid}/event/{event_id}", token=val2_token(api.d))).status == 404

    inspection = make_event(tid, uid(), eventType="inspection", eventResult=7)
    reply = await api.post(f"/inspection/{tid}", inspection, role="ins")
    assert reply.status == 201 and reply.body["ticketEventStatus"] == 7
    assert len(reply.body["ticketMetadata"]["ticketEventIds"]) == 2

    listed = await api.get(f"/ticket/{tid}/event", role="ins")
    assert listed.status == 200 and listed.headers["X-Total-Count"] == "2"
    assert [r["ticketEvent"]["eventType"] for r in listed.body] == ["validation", "inspection"]
    desc = await api.get(f"/ticket/{tid}/event", params={"sortField": "eventId", "sortOrder": "desc"}, role="pos")
    assert [r["ticketEvent"]["eventType"] for r in desc.body] == ["inspection", "validation"]
    one = await api.get(f"/ticket/{tid}/event/{event_id}", role="pos")
    assert one.status == 200 and one.body["ticketEvent"]["localEventId"] == event["localEventId"]
    assert (await api.get(f"/ticket/{tid}/event", params={"sortField": "body"}, role="pos")).status == 400
    assert (await api.get(f"/ticket/{tid}/event/abc", role="pos")).status == 404
    assert (await api.get(f"/ticket/other/event/{event_id}", role="admin")).status == 404


async def test_single_event_on_a_revoked_ticket_tells_the_inspector(api, make_event):
    tid = await api.ticket_id("trav-events-revoked")
    await api.put(f"/ticket/{tid}/revoke", role="pos")
    reply = await api.post(f"/inspection/{tid}", make_event(tid, uid(), eventType="inspection"), role="ins")
    assert reply.status == 201 and "revoked" in reply.body["ticketEventInspectMessage"]


async def test_single_event_errors(api, make_event):
    mismatch = await api.post("/validation/T-a", make_event("T-b", uid()), role="val")
    assert mismatch.status == 400 and mismatch.body["details"][0]["field"] == "ticketId"
    array = await api.post("/validation/T-a", [make_event("T-a", uid())], role="val")
    assert array.status == 400
    wrong_kind = await api.post("/inspection/T-a", make_event("T-a", uid()), role="ins")  # eventType validation
    assert wrong_kind.status == 400 and wrong_kind.body["details"][0]["field"] == "eventType"
    bad_time = await api.post("/validation/T-a", make_event("T-a", uid(), time=5), role="val")
    assert bad_time.status == 400 and bad_time.body["details"][0]["field"] == "time"


async def test_events_of_a_ticket_nobody_knows_are_404(api):
    assert (await api.get("/ticket/never-seen/event", role="ins")).status == 404


async def test_concurrent_batches_store_each_event_once(api, deployment, make_event):
    import asyncio
    prefix = uid()
    other = val2_token(deployment)
    batches = [[make_event(f"T-{prefix}", f"{prefix}-{(b * 25 + i) % 200}") for i in range(50)] for b in range(16)]
    before = count_rows(deployment)
    replies = await asyncio.gather(*(api.post("/validation", batch, **({"role": "val"} if n % 2 else {"token": other}))
                                     for n, batch in enumerate(batches)))
    assert all(r.status == 200 for r in replies)
    # each credential saw localEventIds 0..199 (some of them); each (credential, id) stored once
    per_credential = [set(), set()]
    for n, batch in enumerate(batches):
        per_credential[n % 2].update(e["localEventId"] for e in batch)
    assert count_rows(deployment) == before + len(per_credential[0]) + len(per_credential[1])
    ids = [stored_ids(deployment, sub, list(lids)) for sub, lids in zip(("val2", "val1"), per_credential)]
    assert [len(i) for i in ids] == [len(lids) for lids in per_credential]
    assert not set(ids[0].values()) & set(ids[1].values())
