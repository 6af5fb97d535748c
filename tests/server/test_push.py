"""Feeds pushed by long-poll: the deny list (``wait=S``) answers as soon as a revoke commits,
and the uses feed serves every accepted validation, pulled by id and pushed the same way."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

from mtb.timeutil import format_extended


async def newest_deny_id(api) -> int:
    entries = (await api.get("/blacklist", role="val", params={"limit": 10000})).body
    return max((e["blacklistEntryId"] for e in entries), default=0)


async def test_a_waiting_deny_list_read_answers_when_a_revoke_commits(api):
    tid = await api.ticket_id(f"trav-{uuid.uuid4().hex[:8]}")
    after = await newest_deny_id(api)
    waiting = asyncio.create_task(api.get("/blacklist", role="val", params={"blacklistEntryId": after, "wait": 30}))
    await asyncio.sleep(0.5)
    assert not waiting.done()  # nothing new: the request is held
    assert (await api.put(f"/ticket/{tid}/revoke", role="pos")).status == 200
    reply = await asyncio.wait_for(waiting, 10)  # long before the 30 s: the revoke woke it
    assert reply.status == 200 and [e["ticketId"] for e in reply.body] == [tid]
    assert reply.body[0]["blacklistEntryId"] > after


async def test_a_wait_with_nothing_new_ends_in_an_empty_page_and_wait_is_bounded(api):
    after = await newest_deny_id(api)
    reply = await api.get("/blacklist", role="val", params={"blacklistEntryId": after, "wait": 1})
    assert reply.status == 200 and reply.body == []
    for bad in ("56", "-1", "x"):
        reply = await api.get("/blacklist", role="val", params={"wait": bad})
        assert reply.status == 400 and reply.body["details"][0]["field"] == "wait"
    # something already there: no waiting at all
    tid = await api.ticket_id(f"trav-{uuid.uuid4().hex[:8]}")
    await api.put(f"/ticket/{tid}/revoke", role="pos")
    reply = await asyncio.wait_for(api.get("/blacklist", role="val", params={"blacklistEntryId": after,
                                                                               "wait": 50}), 10)
    assert tid in [e["ticketId"] for e in reply.body]


async def newest_use_id(api) -> int:
    uses = (await api.get("/uses", role="ins", params={"limit": 10000})).body
    return max((u["useId"] for u in uses), default=0)


async def test_the_uses_feed_serves_accepted_validations_of_every_device_by_id(api, make_event):
    after = await newest_use_id(api)
    tag = uuid.uuid4().hex[:8]
    now = datetime.now(timezone.utc)
    recent = format_extended(now - timedelta(seconds=30))
    accepted = make_event(f"T-u-{tag}", f"u-{tag}-1", time=recent)
    refused = make_event(f"T-u-{tag}", f"u-{tag}-2", time=recent, eventResult=8)
    old = make_event(f"T-u-{tag}", f"u-{tag}-3", time=format_extended(now - timedelta(hours=2)))  # past the horizon
    ahead = make_event(f"T-u-{tag}", f"u-{tag}-6", time="9999-12-31T00:00:00.000Z")  # a device clock gone wrong
    bare = {"ticketId": f"T-u2-{tag}", "localEventId": f"u-{tag}-4", "time": recent, "eventResult": 0}
    assert (await api.post("/validation", [accepted, refused, old, ahead], role="val")).status == 200
    assert (await api.post("/inspection", [make_event(f"T-u-{tag}", f"u-{tag}-5", time=recent,
                                                      eventType="inspection")], role="ins")).status == 200
    assert (await api.post(f"/validation/T-u2-{tag}", bare, role="val")).status == 201
    reply = await api.get("/uses", role="val", params={"useId": after})
    assert reply.status == 200, reply
    mine = [u for u in reply.body if tag in u["ticketId"]]
    assert [(u["ticketId"], u["time"]) for u in mine] == [(f"T-u-{tag}", recent), (f"T-u2-{tag}", recent)]  # accepted
    # validations only, and none dated in the future
    first, second = mine
    assert first == {"useId": first["useId"], "ticketId": f"T-u-{tag}", "time": recent, "device": "val1",
                     "stopAreaId": "SA1", "zoneId": "A", "geo": {"lat": 55.6, "long": 13.0}}
    assert set(second) == {"useId", "ticketId", "time", "device"}  # what the event did not say is left out
    assert first["useId"] < second["useId"]
    later = await api.get("/uses", role="ins", params={"useId": first["useId"]})
    assert [u["useId"] for u in later.body if tag in u["ticketId"]] == [second["useId"]]
    assert (await api.get("/uses", role="pos")).status == 403  # devices only


async def test_a_waiting_uses_read_answers_when_a_validation_is_stored(api, make_event):
    after = await newest_use_id(api)
    waiting = asyncio.create_task(api.get("/uses", role="ins", params={"useId": after, "wait": 30}))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    tag = uuid.uuid4().hex[:8]
    when = format_extended(datetime.now(timezone.utc))
    assert (await api.post("/validation", [make_event(f"T-w-{tag}", f"w-{tag}", time=when)], role="val")).status == 200
    reply = await asyncio.wait_for(waiting, 10)
    assert [u["ticketId"] for u in reply.body] == [f"T-w-{tag}"]
