"""The feeds a validator reads: participantMetadata (ETag), device KDKs and keys, blacklist."""
from __future__ import annotations

import json

from mtb import keys
from mtb import b64url_decode

from .conftest import OTHER_PID, PID


async def test_participant_metadata_with_etag(api, deployment):
    reply = await api.get("/participantMetadata", role="val")
    assert reply.status == 200
    etag = reply.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert [p["pid"] for p in reply.body] == [PID, OTHER_PID]
    ours = reply.body[0]
    assert set(ours) >= {"pid", "organisationName", "mtbPublicKeys", "authtokenPublicKeys"}
    assert ours["mtbPublicKeys"][0]["kid"] == f"{PID}:issuer-1"
    assert ours["authtokenPublicKeys"][0]["kid"] == f"{PID}:auth-1"
    store = keys.KeyStore()
    store.add_metadata(reply.body)
    assert not store.skipped and store.issuer_key(str(PID), f"{PID}:issuer-1") is not None
    assert "d" not in ours["mtbPublicKeys"][0] and "d" not in ours["authtokenPublicKeys"][0]  # no private part

    cached = await api.get("/participantMetadata", role="val", headers={"If-None-Match": etag})
    assert cached.status == 304 and cached.text == "" and cached.headers["ETag"] == etag
    listed = await api.get("/participantMetadata", role="val", headers={"If-None-Match": f'"x", {etag}'})
    assert listed.status == 304
    stale = await api.get("/participantMetadata", role="val", headers={"If-None-Match": '"old"'})
    assert stale.status == 200 and stale.body == reply.body


async def test_metadata_change_is_picked_up_with_a_new_etag(api, deployment):
    path = deployment.data_dir / "participant-metadata.json"
    original = path.read_text()
    first = await api.get("/participantMetadata", role="val")
    try:
        document = json.loads(original)
        document[1]["organisationName"] = "Renamed"
        path.write_text(json.dumps(document))
        import os
        os.utime(path, ns=(1, os.stat(path).st_mtime_ns + 1_000_000))
        second = await api.get("/participantMetadata", role="val", headers={"If-None-Match": first.headers["ETag"]})
        assert second.status == 200 and second.body[1]["organisationName"] == "Renamed"
        assert second.headers["ETag"] != first.headers["ETag"]
        # a broken file does not take the feed down: the last good document is served
        path.write_text("{not json")
        os.utime(path, ns=(1, os.stat(path).st_mtime_ns + 2_000_000))
        third = await api.get("/participantMetadata", role="val")
        assert third.status == 200 and third.body == second.body
    finally:
        path.write_text(original)
        os.utime(path, ns=(1, os.stat(path).st_mtime_ns + 3_000_000))
    assert (await api.get("/participantMetadata", role="val")).body == first.body


async def test_device_kdk_and_device_key(api, deployment):
    reply = await api.get("/device/kdk", role="val")
    assert reply.status == 200
    [kdk] = reply.body
    assert kdk["kid"] == "kdk-1" and len(b64url_decode(kdk["key"])) == 32
    assert (await api.get("/device/kdk", role="ins")).body == reply.body

    key = await api.post("/device/key", {"did": "phone-42"}, role="pos")
    assert key.status == 201  # BoB's Device API: the key is created
    assert key.body["did"] == "phone-42" and key.body["kid"] == "kdk-1"
    assert (await api.post("/device/key", {"did": "phone-42"}, role="val")).body == key.body  # validators may ask
    assert b64url_decode(key.body["deviceKey"]) == keys.derive_device_key(b64url_decode(kdk["key"]), "phone-42")
    for bad in ({}, {"did": ""}, {"did": 42}, {"did": "x", "extra": 1}):
        reply = await api.post("/device/key", bad, role="tvm")
        assert reply.status == 422, bad


async def test_blacklist_paging_and_limits(api):
    ids = []
    for _ in range(3):
        tid = await api.ticket_id("trav-feed")
        await api.put(f"/ticket/{tid}/revoke", role="pos")
        ids.append(tid)
    everything = (await api.get("/blacklist", role="val")).body
    entry_ids = [e["blacklistEntryId"] for e in everything]
    assert entry_ids == sorted(entry_ids) and len(set(entry_ids)) == len(entry_ids)
    assert [e["ticketId"] for e in everything[-3:]] == ids
    after = everything[-3]["blacklistEntryId"]
    tail = (await api.get("/blacklist", params={"blacklistEntryId": after, "limit": 1}, role="val")).body
    assert [e["blacklistEntryId"] for e in tail] == [everything[-2]["blacklistEntryId"]]
    assert (await api.get("/blacklist", params={"blacklistEntryId": 10 ** 12}, role="val")).body == []
    for params in ({"limit": 0}, {"limit": 10001}, {"limit": "x"}, {"blacklistEntryId": -1},
                   {"blacklistEntryId": "1; DROP TABLE blacklist"}):
        reply = await api.get("/blacklist", params=params, role="val")
        assert reply.status == 400 and reply.body["details"][0]["field"] in params, params
    assert (await api.get("/blacklist", params={"limit": 10000}, role="val")).status == 200


async def test_stops_feed_with_etag(api, deployment):
    path = deployment.data_dir / "stops.txt"
    assert (await api.get("/stops", role="val")).status == 404  # a deployment without stops says so
    path.write_text("stop_id,stop_name,stop_lat,stop_lon,zone_id\nS1,One,59.3,18.0,A\n")
    try:
        first = await api.get("/stops", role="val")
        assert first.status == 200 and first.text.startswith("stop_id,")
        assert first.headers["Content-Type"].startswith("text/csv")
        again = await api.get("/stops", role="ins", headers={"If-None-Match": first.headers["ETag"]})
        assert again.status == 304
        assert (await api.get("/stops", role=None)).status == 401
    finally:
        path.unlink()
