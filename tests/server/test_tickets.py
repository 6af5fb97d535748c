"""Ticket API v1: manifest, issue, list/get, freeze/thaw, refund, recover, revoke, bundles."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

import mtb
from mtb import keys, verifier
from mtb import b64url_decode, b64url_encode
from mtb.timeutil import parse_time
from server import jws
from server.config import ServerConfig

from .conftest import FARE, OTHER_PID, PID, Api


async def blacklist_after(api, after: int = 0) -> list[dict]:
    reply = await api.get(f"/blacklist?blacklistEntryId={after}&limit=10000", role="val")
    assert reply.status == 200
    return reply.body


async def last_entry_id(api) -> int:
    entries = await blacklist_after(api)
    return entries[-1]["blacklistEntryId"] if entries else 0


def manifest_token(deployment, key_file="issuer-key.pem", kid=f"{PID}:issuer-1", header=None, **over) -> str:
    now = int(time.time())
    claims = {"manifestId": f"m-{time.time_ns()}", "iss": str(PID), "pid": PID, "iat": now, "exp": now + 600,
              "product": {"productId": "p1"}, "fare": FARE, "validitySeconds": 3600, "count": 1,
              "latestStart": now + 86400, **over}
    head = {"typ": "bob-manifest+jwt", "kid": kid, **(header or {})}
    return b64url_encode(jws.sign(deployment.private_key(key_file), head, claims).encode())


async def test_whole_life_manifest_issue_freeze_thaw_refund(api):
    template = await api.manifest()
    reply = await api.post("/ticket", {"manifestMtbTemplate": template, "requestId": "req-life-1",
                                       "ticketHolder": {"travellerId": "trav-life", "travellerName": "Per Busson"}})
    assert reply.status == 201, reply
    assert set(reply.body) == {"settlementId", "ticketIds"}  # no MTB unless issueMtb
    assert reply.headers["Location"].startswith(api.d.url("/ticketbundle/tb-"))  # absolute
    [tid] = reply.body["ticketIds"]
    bundle = await api.get(reply.headers["Location"][len(api.d.base):], role="pos")
    assert bundle.status == 200 and bundle.body["ticketIds"] == [tid]

    ticket = (await api.get(f"/ticket/{tid}", role="pos")).body
    assert ticket["ticketHolder"] == {"travellerId": "trav-life", "travellerName": "Per Busson"}
    assert ticket["activeStatus"] is True and ticket["state"] == "active"
    assert ticket["refundStatus"] == {"refunded": False} and ticket["recoverStatus"] == {"recovered": False}
    assert ticket["refundableStatus"]["refundable"] is True
    assert ticket["requestId"] == "req-life-1"
    payload = json.loads(b64url_decode(ticket["ticketPayload"]))
    assert payload["ticketId"] == tid and payload["fare"] == FARE and payload["zones"] == ["A", "B"]

    start = await last_entry_id(api)
    assert (await api.put(f"/ticket/{tid}/active", False, role="pos")).body is False
    assert (await api.get(f"/ticket/{tid}/active", role="ins")).body is False
    assert (await api.put(f"/ticket/{tid}/active", False, role="pos")).status == 200  # idempotent
    [frozen] = await blacklist_after(api, start)
    assert frozen["ticketId"] == tid and parse_time(frozen["expire"]) > datetime.now(timezone.utc)
    assert frozen["expire"].endswith("Z") and "T" in frozen["expire"] and "-" in frozen["expire"]

    assert (await api.put(f"/ticket/{tid}/active", {"activeStatus": True}, role="tvm")).body is True
    [thawed] = await blacklist_after(api, frozen["blacklistEntryId"])
    assert thawed["ticketId"] == tid and parse_time(thawed["expire"]) <= datetime.now(timezone.utc)
    assert thawed["blacklistEntryId"] > frozen["blacklistEntryId"]

    refundable = (await api.get(f"/ticket/{tid}/refundableStatus", role="pos")).body
    assert refundable["refundable"] is True
    amount = refundable["refundableAmount"]
    assert amount["currency"] == "SEK" and amount["vatPercent"] == 6.0
    assert 99.0 <= amount["amount"] <= 100.0 and 5.9 <= amount["vatAmount"] <= 6.0

    refund = await api.put(f"/ticket/{tid}/refundStatus", role="pos")
    assert refund.status == 200 and refund.body["refunded"] is True
    assert refund.body["refundedAmount"]["currency"] == "SEK"
    assert (await api.get(f"/ticket/{tid}/refundStatus", role="ins")).body["refunded"] is True
    assert (await api.get(f"/ticket/{tid}/refundableStatus", role="pos")).body == {"refundable": False}
    [refunded] = await blacklist_after(api, thawed["blacklistEntryId"])
    assert refunded["ticketId"] == tid and parse_time(refunded["expire"]) > datetime.now(timezone.utc)

    again = await api.put(f"/ticket/{tid}/refundStatus", role="pos")
    assert again.status == 409 and again.body["code"] == "invalid_state"
    for action in ("recoverStatus", "active"):
        assert (await api.put(f"/ticket/{tid}/{action}", True, role="pos")).status == 409
    assert (await api.put(f"/ticket/{tid}/revoke", role="pos")).status == 409


async def test_revoke_puts_the_ticket_on_the_blacklist_feed(api):
    tid = await api.ticket_id("trav-revoke")
    start = await last_entry_id(api)
    reply = await api.put(f"/ticket/{tid}/revoke", role="tvm")
    assert reply.status == 200 and reply.body == {"ticketId": tid, "revoked": True, "state": "revoked"}
    [entry] = await blacklist_after(api, start)
    assert entry["ticketId"] == tid and set(entry) == {"blacklistEntryId", "ticketId", "expire"}
    assert (await api.put(f"/ticket/{tid}/revoke", role="tvm")).status == 200  # idempotent, no new entry
    assert await blacklist_after(api, entry["blacklistEntryId"]) == []
    for action in ("refundStatus", "recoverStatus"):
        reply = await api.put(f"/ticket/{tid}/{action}", role="pos")
        assert reply.status == 409 and "revoked" in reply.body["message"]
    assert (await api.put(f"/ticket/{tid}/active", True, role="pos")).status == 409
    ticket = (await api.get(f"/ticket/{tid}", role="ins")).body
    assert ticket["activeStatus"] is False and ticket["state"] == "revoked"


async def test_issued_mtb_decodes_and_verifies_against_served_metadata(api):
    reply = await api.issue("trav-mtb", issueMtb=True, manifest={"count": 2, "product": "single-2h-sa1"})
    assert reply.status == 201, reply
    ids = reply.body["ticketIds"]
    assert len(ids) == 2
    metadata = await api.get("/participantMetadata", role="val")
    store = keys.KeyStore()
    store.add_metadata(metadata.body)
    bundle_mtb = mtb.decode(reply.body["ticketBundle"]["mtb"])
    assert bundle_mtb.transport == "zlib+base64url"
    assert verifier.verify_issuer(bundle_mtb, store).ok
    assert [t.ticket_id for t in bundle_mtb.tickets] == ids
    t = bundle_mtb.tickets[0]
    assert bundle_mtb.issuer.header.iid == str(PID) and bundle_mtb.issuer.header.kid == f"{PID}:issuer-1"
    assert t.product_id == "single-2h-sa1" and t.zones == ("A", "B") and t.modes == ("bus", "tram")
    assert t.stop_areas == ("SA1",) and t.traveller_id == "trav-mtb" and t.category == "adult"
    assert t.valid_until - t.valid_from == timedelta(hours=2)
    assert abs((t.valid_from - datetime.now(timezone.utc)).total_seconds()) < 60
    single = mtb.decode((await api.get(f"/ticket/{ids[1]}", role="ins")).body["mtb"])
    assert verifier.verify_issuer(single, store).ok and [x.ticket_id for x in single.tickets] == [ids[1]]
    # a tampered MTB does not verify
    raw = bytearray(mtb.unwrap_transport(reply.body["ticketBundle"]["mtb"])[1])
    raw[-5] ^= 1
    assert not verifier.verify_issuer(mtb.decode(bytes(raw)), store).ok


async def test_start_of_validity_in_the_future(api):
    start = (datetime.now(timezone.utc) + timedelta(days=2)).replace(microsecond=0)
    tid = await api.ticket_id("trav-future", startOfValidity=start.isoformat())
    ticket = (await api.get(f"/ticket/{tid}", role="pos")).body
    assert parse_time(ticket["validFrom"]) == start
    refundable = (await api.get(f"/ticket/{tid}/refundableStatus", role="pos")).body
    assert refundable["refundableAmount"] == {**FARE}  # not started: the whole fare
    late = (datetime.now(timezone.utc) + timedelta(days=60)).isoformat()
    reply = await api.issue("trav-future", startOfValidity=late)
    assert reply.status == 422 and reply.body["details"][0]["field"] == "startOfValidity"
    past = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()
    assert (await api.issue("trav-future", startOfValidity=past)).status == 422
    naive = await api.issue("trav-future", startOfValidity="2026-01-01T00:00:00")
    assert naive.status == 422 and naive.body["details"][0]["field"] == "startOfValidity"


async def test_recover_and_reissue_with_recover_ticket_id(api):
    tid = await api.ticket_id("trav-recover")
    recoverable = (await api.get(f"/ticket/{tid}/recoverableStatus", role="pos")).body
    assert recoverable["recoverable"] is True and recoverable["recoverableAmount"]["currency"] == "SEK"
    start = await last_entry_id(api)
    reply = await api.put(f"/ticket/{tid}/recoverStatus", role="pos")
    assert reply.status == 200 and reply.body["recovered"] is True and reply.body["recoveredAmount"]
    assert (await api.get(f"/ticket/{tid}/recoverStatus", role="pos")).body["recovered"] is True
    assert (await api.get(f"/ticket/{tid}/recoverableStatus", role="pos")).body == {"recoverable": False}
    [entry] = await blacklist_after(api, start)
    assert entry["ticketId"] == tid
    assert (await api.put(f"/ticket/{tid}/recoverStatus", role="pos")).status == 409
    assert (await api.put(f"/ticket/{tid}/refundStatus", role="pos")).status == 409

    new = await api.issue("trav-recover", recoverTicketId=tid)
    assert new.status == 201, new
    [new_id] = new.body["ticketIds"]
    old = (await api.get(f"/ticket/{tid}", role="pos")).body
    assert old["state"] == "replaced" and old["replacedBy"] == new_id and old["recoverStatus"]["recovered"]
    assert (await api.get(f"/ticket/{new_id}", role="pos")).body["recoveredFrom"] == tid
    again = await api.issue("trav-recover", recoverTicketId=tid)  # value already re-issued
    assert again.status == 409
    active = await api.ticket_id("trav-recover")
    assert (await api.issue("trav-recover", recoverTicketId=active)).status == 409  # not recovered
    unknown = await api.issue("trav-recover", recoverTicketId="no-such")
    assert unknown.status == 422 and unknown.body["details"][0]["field"] == "recoverTicketId"


async def test_list_tickets_filters_sorting_and_pages(api):
    traveller = f"trav-list-{time.time_ns()}"
    ids = [await api.ticket_id(traveller, requestId=f"{traveller}-{i}") for i in range(5)]
    await api.put(f"/ticket/{ids[0]}/refundStatus", role="pos")
    await api.put(f"/ticket/{ids[1]}/active", False, role="pos")
    everything = await api.get("/ticket", params={"travellerId": traveller}, role="ins")
    assert everything.status == 200 and len(everything.body) == 5
    assert everything.headers["X-Total-Count"] == "5"

    async def ids_for(**params):
        reply = await api.get("/ticket", params={"travellerId": traveller, **params}, role="pos")
        assert reply.status == 200, reply
        return {t["ticketId"] for t in reply.body}

    assert await ids_for(refunded="true") == {ids[0]}
    assert await ids_for(refunded="false") == set(ids[1:])
    assert await ids_for(active="false") == {ids[0], ids[1]}
    assert await ids_for(active="true") == set(ids[2:])
    assert await ids_for(refundable="true") == set(ids[1:])
    assert await ids_for(refundable="false") == {ids[0]}
    assert await ids_for(requestId=f"{traveller}-3") == {ids[3]}
    assert await ids_for(pid=str(PID)) == set(ids)
    assert await ids_for(pid=str(OTHER_PID)) == set()
    assert await ids_for(travellerId="someone-else") == set()

    by_id = await api.get("/ticket", params={"travellerId": traveller, "sortField": "ticketId",
                                              "sortOrder": "asc"}, role="pos")
    assert [t["ticketId"] for t in by_id.body] == sorted(ids)
    desc = await api.get("/ticket", params={"travellerId": traveller, "sortField": "ticketId",
                                            "sortOrder": "desc"}, role="pos")
    assert [t["ticketId"] for t in desc.body] == sorted(ids, reverse=True)
    pages = []
    for page in (1, 2, 3):
        reply = await api.get("/ticket", params={"travellerId": traveller, "sortField": "ticketId", "sortOrder": "asc", "page": page,
                                                 "pageSize": 2}, role="pos")
        pages.append([t["ticketId"] for t in reply.body])
        assert ("Link" in reply.headers) == (page < 3)
    assert pages == [sorted(ids)[0:2], sorted(ids)[2:4], sorted(ids)[4:]]
    window = await api.get("/ticket", params={"travellerId": traveller, "sortField": "ticketId", "sortOrder": "asc", "offset": 1,
                                              "limit": 3}, role="pos")
    assert [t["ticketId"] for t in window.body] == sorted(ids)[1:4]


@pytest.mark.parametrize("params,field", [
    ({}, "travellerId"),
    ({"travellerId": "x", "sortField": "price"}, "sortField"),
    ({"travellerId": "x", "sortField": "issued_at; DROP TABLE tickets"}, "sortField"),
    ({"travellerId": "x", "sortOrder": "sideways"}, "sortOrder"),
    ({"travellerId": "x", "pageSize": "101"}, "pageSize"),
    ({"travellerId": "x", "limit": "1000"}, "limit"),
    ({"travellerId": "x", "page": "0"}, "page"),
    ({"travellerId": "x", "page": "1", "offset": "2"}, "page"),
    ({"travellerId": "x", "active": "maybe"}, "active"),
    ({"travellerId": "x", "pid": "1 OR 1=1"}, "pid"),
])
async def test_list_tickets_bad_parameters_are_400(api, params, field):
    reply = await api.get("/ticket", params=params, role="pos")
    assert reply.status == 400, reply
    assert reply.body["details"][0]["field"] == field


async def test_sql_injection_in_filters_changes_nothing(api):
    tid = await api.ticket_id("trav-sqli")
    for evil in ("' OR '1'='1", "trav-sqli' --", "x'); DROP TABLE tickets; --", "%", "_"):
        reply = await api.get("/ticket", params={"travellerId": evil, "requestId": evil}, role="admin")
        assert reply.status == 200 and reply.body == [], evil
        reply = await api.get("/ticket", params={"travellerId": evil}, role="admin")
        assert reply.status == 200 and reply.body == [], evil
    assert (await api.get(f"/ticket/{tid}", role="pos")).status == 200
    assert len((await api.get("/ticket", params={"travellerId": "trav-sqli"}, role="pos")).body) == 1
    assert (await api.get("/ticket/' OR '1'='1", role="pos")).status == 404


async def test_unknown_ticket_is_404_on_every_ticket_route(api):
    for method, path in [("GET", ""), ("GET", "/active"), ("PUT", "/active"), ("GET", "/event"),
                         ("GET", "/event/1"), ("GET", "/recoverStatus"), ("PUT", "/recoverStatus"),
                         ("GET", "/recoverableStatus"), ("GET", "/refundStatus"), ("PUT", "/refundStatus"),
                         ("GET", "/refundableStatus"), ("PUT", "/revoke")]:
        reply = await api.call(method, f"/ticket/no-such-ticket{path}", role="admin",
                               json_body=True if method == "PUT" else None)
        assert reply.status == 404, (method, path, reply)
        assert reply.body["code"] in ("ticket_not_found", "event_not_found")
    assert (await api.get("/ticketbundle/no-such", role="pos")).status == 404


async def test_other_participant_cannot_see_or_change_our_tickets(api, deployment):
    tid = await api.ticket_id("trav-private")
    now = int(time.time())
    token = jws.sign(deployment.private_key("other-auth.pem"), {"kid": f"{OTHER_PID}:auth-1"},
                     {"iss": str(OTHER_PID), "sub": "pos-of-4321", "iat": now, "exp": now + 600, "bobAuthZ": "pos"})
    assert (await api.get(f"/ticket/{tid}", token=token)).status == 404
    assert (await api.put(f"/ticket/{tid}/revoke", token=token)).status == 404
    listed = await api.get("/ticket", params={"travellerId": "trav-private"}, token=token)
    assert listed.status == 200 and listed.body == []
    assert (await api.get(f"/ticket/{tid}", role="pos")).body["state"] == "active"
    # our manifest is not theirs to issue from
    reply = await api.post("/ticket", {"manifestMtbTemplate": await api.manifest()}, token=token)
    assert reply.status == 403 and reply.body["code"] == "wrong_participant"
    # an admin may issue from another known participant's manifest
    foreign = manifest_token(deployment, "other-issuer.pem", f"{OTHER_PID}:issuer-1", pid=OTHER_PID)
    reply = await api.post("/ticket", {"manifestMtbTemplate": foreign}, role="admin")
    assert reply.status == 201, reply


@pytest.mark.parametrize("case", ["unknown participant", "unknown kid", "bad signature", "alg none",
                                  "expired", "wrong key", "garbage", "malformed claims", "hs256", "huge count"])
async def test_bad_manifests_are_400(api, deployment, case):
    if case == "unknown participant":
        template = manifest_token(deployment, pid=999)
    elif case == "unknown kid":
        template = manifest_token(deployment, kid=f"{PID}:issuer-9")
    elif case == "bad signature":
        token = b64url_decode(await api.manifest()).decode()
        head, body, sig = token.split(".")
        claims = json.loads(b64url_decode(body))
        claims["items"][0]["fare"]["amount"] = 0.01
        template = f"{head}.{b64url_encode(json.dumps(claims).encode())}.{sig}"
    elif case == "alg none":
        token = b64url_decode(await api.manifest()).decode()
        _, body, _ = token.split(".")
        head = b64url_encode(json.dumps({"alg": "none", "typ": "bob-manifest+jwt", "kid": f"{PID}:issuer-1"}).encode())
        template = f"{head}.{body}."
    elif case == "expired":
        template = manifest_token(deployment, exp=int(time.time()) - 3600)
    elif case == "wrong key":  # signed by the other participant's key but claiming our pid and kid
        template = manifest_token(deployment, "other-issuer.pem")
    elif case == "garbage":
        template = "!!!"
    elif case == "malformed claims":
        template = manifest_token(deployment, fare="free")
    elif case == "huge count":
        template = manifest_token(deployment, count=100_000)
    else:
        head = b64url_encode(json.dumps({"alg": "HS256", "kid": f"{PID}:issuer-1"}).encode())
        template = f"{head}.{b64url_encode(b'{}')}.{b64url_encode(b'x' * 32)}"
    reply = await api.post("/ticket", {"manifestMtbTemplate": template}, role="pos")
    assert reply.status == 400, (case, reply)
    assert reply.body["code"] in ("invalid_manifest", "unknown_participant", "unknown_key", "bad_manifest_signature",
                                  "manifest_expired")
    assert reply.body["message"]


async def test_a_manifest_issues_once_and_request_id_replays(api):
    template = await api.manifest()
    first = await api.post("/ticket", {"manifestMtbTemplate": template, "requestId": "r-once"}, role="pos")
    assert first.status == 201
    replay = await api.post("/ticket", {"manifestMtbTemplate": template, "requestId": "r-once"}, role="pos")
    assert replay.status == 200 and replay.body["ticketIds"] == first.body["ticketIds"]
    assert replay.headers["Location"] == first.headers["Location"]
    reuse = await api.post("/ticket", {"manifestMtbTemplate": template}, role="pos")
    assert reuse.status == 409 and reuse.body["code"] == "manifest_already_used"
    other = await api.post("/ticket", {"manifestMtbTemplate": await api.manifest(), "requestId": "r-once"},
                           role="pos")
    assert other.status == 409 and other.body["code"] == "request_id_reused"


@pytest.mark.parametrize("body,field", [
    ({}, "manifestMtbTemplate"),
    ({"manifestMtbTemplate": 5}, "manifestMtbTemplate"),
    ({"manifestMtbTemplate": "x", "issueMtb": "yes"}, "issueMtb"),
    ({"manifestMtbTemplate": "x", "ticketHolder": {"travellerName": "x"}}, "ticketHolder.travellerId"),
    ({"manifestMtbTemplate": "x", "startOfValidity": "tomorrow"}, "startOfValidity"),
])
async def test_bad_issue_requests_are_422_naming_the_field(api, body, field):
    reply = await api.post("/ticket", body, role="pos")
    assert reply.status == 422, reply
    assert reply.body["details"][0]["field"] == field


async def test_ticket_bundles(api):
    first = await api.issue("trav-bundle", manifest={"count": 3})
    a, b, c = first.body["ticketIds"]
    reply = await api.post("/ticketbundle", {"ticketIds": [c, a]}, role="pos")
    assert reply.status == 201, reply
    assert reply.headers["Location"] == api.d.url(f"/ticketbundle/{reply.body['ticketBundleId']}")
    assert reply.body["ticketIds"] == [c, a]
    decoded = mtb.decode(reply.body["mtb"])
    assert [t.ticket_id for t in decoded.tickets] == [c, a]
    fetched = await api.get(f"/ticketbundle/{reply.body['ticketBundleId']}", role="ins")
    assert fetched.status == 200 and fetched.body == reply.body
    # from the sub-bundle's tickets again: still the same origin bundle
    assert (await api.post("/ticketbundle", {"ticketIds": [a]}, role="pos")).status == 201

    other = await api.ticket_id("trav-bundle")
    mixed = await api.post("/ticketbundle", {"ticketIds": [a, other]}, role="pos")
    assert mixed.status == 400 and mixed.body["code"] == "different_bundles"
    unknown = await api.post("/ticketbundle", {"ticketIds": [a, "nope"]}, role="pos")
    assert unknown.status == 422 and unknown.body["details"][0]["field"] == "ticketIds[1]"
    assert (await api.post("/ticketbundle", {"ticketIds": []}, role="pos")).status == 422
    assert (await api.post("/ticketbundle", {"ticketIds": [a, a]}, role="pos")).status == 422
    await api.put(f"/ticket/{b}/revoke", role="pos")
    assert (await api.post("/ticketbundle", {"ticketIds": [b]}, role="pos")).status == 409


def test_refund_value_is_pro_rata_and_none_once_validity_is_over():
    from server.ticket_api.tickets import remaining_value
    from server.store import TicketRecord
    now = datetime.now(timezone.utc)
    record = TicketRecord(ticket_id="x", pid=PID, bundle_id="b", manifest_id="m", settlement_id="s", issued_at=now,
                          valid_from=now - timedelta(hours=2), valid_until=now - timedelta(hours=1), fare=FARE,
                          state="active", payload="", mtb="")
    assert remaining_value(record, now) is None
    record.valid_until = now + timedelta(hours=2)
    half = remaining_value(record, now)
    assert half["amount"] == 50.0 and half["vatAmount"] == 3.0 and half["vatPercent"] == 6.0


async def test_locations_are_absolute_and_use_the_public_url_behind_a_proxy(make_server):
    d = make_server(public_url="https://tickets.example.com/")
    async with aiohttp.ClientSession() as session:
        api = Api(d, session)
        issued = await api.issue("trav-proxy")
        bundle = issued.headers["Location"]
        assert bundle.startswith("https://tickets.example.com/api/v1/ticketbundle/tb-"), bundle
        manifest = await api.post("/manifest", {"productSelections": [{"productId": "single-2h"}]}, role="pos")
        assert manifest.headers["Location"] == f"https://tickets.example.com/api/v1/manifest/{manifest.body['manifestId']}"
    for bad in ("tickets.example.com", "https://tickets.example.com/path", "ftp://x"):
        with pytest.raises(ValueError):
            ServerConfig(public_url=bad)
