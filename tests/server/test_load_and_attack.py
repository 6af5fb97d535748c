"""The ticket server under load and under attack (issue 6, item 4), over real HTTP on 127.0.0.1.

* 100 concurrent validator clients for a bounded time post event batches (and re-post some,
  to show idempotency) and read feeds: no 5xx, and the store holds exactly the events sent.
* The rate limit holds per credential: one credential over the limit gets 429 while another
  is still served, and a participant cannot spend another participant's budget.
* Expired, tampered, ``alg: none`` and HS256-with-the-public-key tokens are 401.
* A validator token cannot refund, revoke, freeze, issue or read tickets (403); a participant
  cannot see or change another participant's tickets (404).
* SQL injection in query filters, sort fields and path ids changes nothing.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import aiohttp
from cryptography.hazmat.primitives import serialization

from mtb import keys
from mtb import b64url_encode
from server import auth, jws
from server.store import Credential

from .conftest import OTHER_PID, PID, Api, Deployment, event

CLIENTS = 100
LOAD_SECONDS = 3.0
HIGH_LIMIT = {"requests": 1_000_000, "window_seconds": 60, "block_seconds": 1, "roles": {}}


# --- helpers ----------------------------------------------------------------------------------

def db_rows(d: Deployment, sql: str, params: Any = ()) -> list[Any]:
    return d.rows(sql, params)


def table_counts(d: Deployment) -> dict[str, int]:
    """Rows per table of data (rate-limit windows change with every request: not data)."""
    tables = [t for t in d.tables() if t != "rate_limits"]
    assert {"tickets", "events", "deny_list", "credentials"} <= set(tables)
    return {t: db_rows(d, f'SELECT count(*) AS n FROM "{t}"')[0][0] for t in tables}


def add_credentials(d: Deployment, entities: list[str], role: str) -> None:
    """Many credentials at once: one scrypt hash (same password) stored for each."""
    hashed = auth.hash_password("load-test-password")
    store = d.store()
    try:
        for entity in entities:
            store.add_credential(Credential(entity, role, PID, hashed, datetime.now(timezone.utc)))
    finally:
        store.close()


def token_for(d: Deployment, sub: str, role: str, *, pid: int = PID, key_file: str = "authtoken-key.pem",
              kid: str | None = None, iat: int | None = None, lifetime: int = 600) -> str:
    """A token exactly as GET /auth issues it (or as another participant's server would)."""
    iat = int(time.time()) if iat is None else iat
    header = {"typ": "JWT", "kid": kid or f"{pid}:auth-1"}
    claims = {"iss": str(pid), "sub": sub, "iat": iat, "exp": iat + lifetime, "bobAuthZ": role}
    return jws.sign(d.private_key(key_file), header, claims)


def other_participant_token(d: Deployment, sub: str, role: str) -> str:
    return token_for(d, sub, role, pid=OTHER_PID, key_file="other-auth.pem")


def seg(value: dict[str, Any]) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode())


async def still_answers(api: Api) -> None:
    reply = await api.get("/openapi.json", role=None)
    assert reply.status == 200
    assert (await api.get("/blacklist", role="val")).status == 200


# --- load -------------------------------------------------------------------------------------

async def test_100_concurrent_clients_no_5xx_no_lost_event(make_server):
    d = make_server(rate_limit=HIGH_LIMIT, max_batch_events=100)
    subs = [f"load-val-{i:03d}" for i in range(CLIENTS)]
    add_credentials(d, subs, "val")
    tokens = {sub: token_for(d, sub, "val") for sub in subs}
    sent: dict[str, set[str]] = {sub: set() for sub in subs}  # localEventIds stored, per device
    located: dict[tuple[str, str], int] = {}  # (device, localEventId) -> the eventId a 303 named
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    failures: list[str] = []
    deadline = time.monotonic() + LOAD_SECONDS
    connector = aiohttp.TCPConnector(limit=0)

    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def request(method: str, path: str, sub: str, body: Any = None,
                          headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
            started = time.perf_counter()
            async with session.request(method, d.url(path), headers={"X-BoB-AuthToken": tokens[sub], **(headers or {})},
                                       json=body, allow_redirects=False) as response:
                text = await response.text()
            latencies.append(time.perf_counter() - started)
            statuses[response.status] += 1
            return response.status, (json.loads(text) if text else None), response.headers

        async def client(index: int) -> None:
            sub = subs[index]
            rng = random.Random(index)
            batches: list[list[dict[str, Any]]] = []
            etag = None
            while time.monotonic() < deadline:
                roll = rng.random()
                if roll < 0.55 or not batches:  # a new batch, as a validator's outbox drains
                    batch = [event(f"T-{index}-{rng.randrange(50)}", f"{sub}-{uuid.uuid4().hex}",
                                   eventResult=rng.choice([0, 0, 0, 1, 5, 8]))
                             for _ in range(rng.randrange(1, 21))]
                    status, body, _ = await request("POST", "/validation", sub, batch)
                    if status != 200 or body is not None:
                        failures.append(f"{sub} new batch: {status} {str(body)[:200]}")
                        continue
                    sent[sub].update(ev["localEventId"] for ev in batch)
                    batches.append(batch)
                elif roll < 0.70:  # the same batch again (the ack was lost): nothing new stored
                    batch = rng.choice(batches)
                    status, body, _ = await request("POST", "/validation", sub, batch)
                    if status != 200:
                        failures.append(f"{sub} re-sent batch: {status} {str(body)[:200]}")
                elif roll < 0.75:  # one event by itself; a repeat is a 303 to the stored one
                    ev = rng.choice(rng.choice(batches))
                    status, body, headers = await request("POST", f"/validation/{ev['ticketId']}", sub, ev)
                    named = headers.get("Location", "").rpartition("/event/")[2]
                    if status != 303 or not named.isdigit():
                        failures.append(f"{sub} single repeat: {status} {str(body)[:200]}")
                    else:
                        located[(sub, ev["localEventId"])] = int(named)
                else:  # the feeds a validator polls
                    path = rng.choice(["/blacklist?blacklistEntryId=0&limit=100", "/participantMetadata",
                                       "/device/kdk"])
                    status, _, headers = await request("GET", path, sub,
                                                       headers={"If-None-Match": etag} if etag and "Meta" in path
                                                       else None)
                    if status not in (200, 304):
                        failures.append(f"{sub} GET {path}: {status}")
                    if "Meta" in path and headers.get("ETag"):
                        etag = headers["ETag"]

        started = time.monotonic()
        await asyncio.gather(*(client(i) for i in range(CLIENTS)))
        elapsed = time.monotonic() - started

    assert not failures, failures[:5]
    assert not [s for s in statuses if s >= 500], statuses
    assert set(statuses) <= {200, 201, 303, 304}, statuses
    total = sum(statuses.values())
    assert total >= 2 * CLIENTS, f"only {total} requests in {elapsed:.1f} s"
    assert all(sent[sub] for sub in subs)  # all 100 clients really were in there, each got events stored
    # Not one event lost, not one stored twice: the store equals what the clients sent.
    stored = dict(db_rows(d, "SELECT sub, count(*) FROM events WHERE sub LIKE 'load-val-%' GROUP BY sub"))
    assert stored == {sub: len(ids) for sub, ids in sent.items() if ids}
    assert sum(stored.values()) == sum(len(ids) for ids in sent.values()) > CLIENTS
    ids = dict(((sub, lid), eid) for sub, lid, eid in
               db_rows(d, "SELECT sub, local_event_id, id FROM events WHERE sub LIKE 'load-val-%'"))
    assert set(ids) == {(sub, lid) for sub, lids in sent.items() for lid in lids}
    assert located and all(ids[key] == eid for key, eid in located.items())  # each 303 named the stored event
    async with aiohttp.ClientSession() as session:
        await still_answers(Api(d, session))


# --- rate limit -------------------------------------------------------------------------------

async def test_rate_limit_holds_per_credential_under_concurrency(make_server):
    d = make_server(rate_limit={"requests": 20, "window_seconds": 60, "block_seconds": 30, "roles": {}})
    flooder, neighbour = token_for(d, "val1", "val"), token_for(d, "val2", "val")
    async with aiohttp.ClientSession() as session:
        api = Api(d, session)
        flood = [api.get("/blacklist", token=flooder) for _ in range(60)]
        calm = [api.get("/blacklist", token=neighbour) for _ in range(20)]
        replies = await asyncio.gather(*flood, *calm)
        flood_statuses = Counter(r.status for r in replies[:60])
        assert flood_statuses == {200: 20, 429: 40}
        assert all(r.status == 200 for r in replies[60:])  # the other credential is still served
        over = [r for r in replies[:60] if r.status == 429]
        assert all(r.body["code"] == "rate_limited" and 1 <= int(r.headers["Retry-After"]) <= 30 for r in over)
        # a fresh token for the blocked credential does not help; the neighbour is at its limit now
        assert (await api.get("/blacklist", token=token_for(d, "val1", "val"))).status == 429
        assert (await api.get("/blacklist", token=neighbour)).status == 429
        assert (await api.get("/blacklist", role="ins")).status == 200  # a third credential: fine
        assert (await api.get("/openapi.json", role=None)).status == 200


async def test_another_participant_cannot_spend_our_credentials_budget(make_server):
    """Participant 4321 may sign tokens for any sub of its own; one named like our validator
    must not exhaust (and block) our validator's rate limit."""
    d = make_server(rate_limit={"requests": 10, "window_seconds": 60, "block_seconds": 30, "roles": {}})
    foreign = other_participant_token(d, "val1", "val")
    async with aiohttp.ClientSession() as session:
        api = Api(d, session)
        statuses = Counter([(await api.get("/blacklist", token=foreign)).status for _ in range(15)])
        assert statuses == {200: 10, 429: 5}  # the foreign device is limited...
        ours = await api.get("/blacklist", token=token_for(d, "val1", "val"))
        assert ours.status == 200, ours  # ...and ours is not


async def test_unauthenticated_password_guessing_cannot_lock_a_device_out(make_server):
    d = make_server(rate_limit={"requests": 5, "window_seconds": 60, "block_seconds": 30, "roles": {}},
                    login_limit={"failures": 5, "window_seconds": 60, "block_seconds": 30})
    token = token_for(d, "val1", "val")
    async with aiohttp.ClientSession() as session:
        api = Api(d, session)
        guesses = [(await api.get("/auth/val1", role=None, headers={"Authorization": d.basic("val1", "guess")})).status
                   for _ in range(6)]
        assert guesses == [401] * 5 + [429]  # guessing is slowed down, as it should be...
        assert (await api.get("/blacklist", token=token)).status == 200  # ...but the device must keep working


# --- tokens -----------------------------------------------------------------------------------

def _public_key_forms(d: Deployment) -> dict[str, bytes]:
    public = d.private_key("authtoken-key.pem").public_key()
    jwk = keys.public_jwk(public, f"{PID}:auth-1")
    return {
        "pem": public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "der": public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        "jwk": json.dumps(jwk).encode(),
        "point": public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint),
    }


async def test_forged_tokens_are_401(api, deployment):
    d = deployment
    now = int(time.time())
    admin = {"iss": str(PID), "sub": "admin", "iat": now, "exp": now + 600, "bobAuthZ": "admin"}
    kid = f"{PID}:auth-1"
    real_val = d.token("val")
    head, body, sig = real_val.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged: dict[str, str] = {
        "expired": token_for(d, "admin", "admin", iat=now - 7200, lifetime=600),
        "issued in the future": token_for(d, "admin", "admin", iat=now + 3600),
        "tampered role": f"{head}.{seg({**claims, 'bobAuthZ': 'admin'})}.{sig}",
        "tampered sub": f"{head}.{seg({**claims, 'sub': 'admin'})}.{sig}",
        "tampered exp": f"{head}.{seg({**claims, 'exp': claims['exp'] + 10 ** 6})}.{sig}",
        "signature of another token": f"{head}.{body}.{d.token('pos').split('.')[2]}",
        "alg none, no signature": f"{seg({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{seg(admin)}.",
        "alg None": f"{seg({'alg': 'None', 'kid': kid})}.{seg(admin)}.",
        "alg none with the real signature": f"{seg({'alg': 'none', 'kid': kid})}.{body}.{sig}",
        "no alg": f"{seg({'kid': kid})}.{seg(admin)}.{sig}",
        "other participant's key, our iss": token_for(d, "admin", "admin", key_file="other-auth.pem"),
        "our kid, other participant's key": token_for(d, "admin", "admin", key_file="other-auth.pem", kid=kid),
        "unknown kid": token_for(d, "admin", "admin", kid=f"{PID}:auth-9"),
        "no such credential": token_for(d, "intruder", "admin"),
        "credential with another role": token_for(d, "val1", "admin"),
    }
    for form, secret in _public_key_forms(d).items():  # the classic RS/HS confusion, with an EC key
        signing_input = f"{seg({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{seg(admin)}"
        mac = b64url_encode(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
        forged[f"HS256 keyed with the public key ({form})"] = f"{signing_input}.{mac}"
    for name, token in forged.items():
        for path in ("/blacklist", "/ticket?travellerId=trav-1", "/device/kdk"):
            reply = await api.get(path, token=token)
            assert reply.status == 401, (name, path, reply)
            assert reply.body["code"] in ("invalid_token", "token_expired"), (name, reply)
    assert (await api.get("/blacklist", token=forged["expired"])).body["code"] == "token_expired"
    await still_answers(api)


# --- roles and tenants ------------------------------------------------------------------------

async def test_validator_token_cannot_change_or_read_tickets(api, deployment):
    tid = await api.ticket_id("trav-val-probe")
    bundle = (await api.get(f"/ticket/{tid}", role="pos")).body["ticketBundleId"]
    def status(ticket: dict[str, Any]) -> tuple:
        return ticket["state"], ticket["activeStatus"], ticket["refundStatus"], ticket["recoverStatus"]

    before = status((await api.get(f"/ticket/{tid}", role="admin")).body)
    assert before[:2] == ("issued", True) or before[1] is True
    blacklist_before = table_counts(deployment)["deny_list"]
    template = await api.manifest()
    attempts = [
        ("PUT", f"/ticket/{tid}/refundStatus", None), ("PUT", f"/ticket/{tid}/revoke", None),
        ("PUT", f"/ticket/{tid}/active", False), ("PUT", f"/ticket/{tid}/active", {"activeStatus": False}),
        ("PUT", f"/ticket/{tid}/recoverStatus", None),
        ("POST", "/ticket", {"manifestMtbTemplate": template, "ticketHolder": {"travellerId": "trav-val"}}),
        ("POST", "/manifest", {"productSelections": [{"productId": "single-2h"}]}),
        ("POST", "/ticketbundle", {"ticketIds": [tid]}),
        ("GET", f"/ticket/{tid}", None), ("GET", "/ticket?travellerId=trav-val-probe", None),
        ("GET", f"/ticket/{tid}/event", None), ("GET", f"/ticket/{tid}/active", None),
        ("GET", f"/ticket/{tid}/refundStatus", None), ("GET", f"/ticket/{tid}/refundableStatus", None),
        ("GET", f"/ticket/{tid}/recoverStatus", None), ("GET", f"/ticketbundle/{bundle}", None),
    ]
    for method, path, body in attempts:
        reply = await api.call(method, path, role="val", json_body=body)
        assert reply.status == 403, (method, path, reply)
        assert reply.body["code"] == "wrong_role"
        assert tid not in reply.text
    assert status((await api.get(f"/ticket/{tid}", role="admin")).body) == before
    assert table_counts(deployment)["deny_list"] == blacklist_before  # no revoke/freeze/refund happened
    assert not db_rows(deployment, "SELECT 1 FROM tickets WHERE traveller_id = 'trav-val'")


async def test_validator_reads_only_its_own_events(api, deployment):
    tid = await api.ticket_id("trav-own-events")
    posted = await api.post(f"/validation/{tid}", event(tid, f"own-{uuid.uuid4().hex}"), role="val")
    assert posted.status == 201, posted
    location = posted.headers["Location"].split(deployment.config.base_path, 1)[1]
    assert (await api.get(location, role="val")).status == 200
    from .test_events import val2_token
    assert (await api.get(location, token=val2_token(deployment))).status == 404


async def test_participant_cannot_read_or_change_another_participants_tickets(api, deployment):
    tid = await api.ticket_id("trav-tenant")
    bundle = (await api.get(f"/ticket/{tid}", role="pos")).body["ticketBundleId"]
    await api.post(f"/validation/{tid}", event(tid, f"ten-{uuid.uuid4().hex}"), role="val")
    counts = table_counts(deployment)
    for role in ("pos", "tvm", "ins"):
        foreign = other_participant_token(deployment, f"{role}-of-{OTHER_PID}", role)
        for path in (f"/ticket/{tid}", f"/ticket/{tid}/event", f"/ticket/{tid}/active", f"/ticket/{tid}/refundStatus",
                     f"/ticket/{tid}/refundableStatus", f"/ticket/{tid}/recoverableStatus",
                     f"/ticketbundle/{bundle}"):
            reply = await api.get(path, token=foreign)
            assert reply.status == 404, (role, path, reply)
            assert "mtb" not in (reply.body or {}) and tid not in reply.text.replace(f"'{tid}'", "")
        for params in ({"travellerId": "trav-tenant"}, {"travellerId": "trav-tenant", "pid": str(PID)}):
            listed = await api.get("/ticket", token=foreign, params=params)
            assert (listed.status, listed.body, listed.headers["X-Total-Count"]) == (200, [], "0"), listed
        if role != "ins":
            for path, body in ((f"/ticket/{tid}/revoke", None), (f"/ticket/{tid}/refundStatus", None),
                               (f"/ticket/{tid}/active", False), (f"/ticket/{tid}/recoverStatus", None)):
                reply = await api.put(path, body, token=foreign)
                assert reply.status == 404, (role, path, reply)
            bundled = await api.post("/ticketbundle", {"ticketIds": [tid]}, token=foreign)
            assert bundled.status in (404, 409, 422) and tid not in (bundled.body or {}).get("ticketIds", []), bundled
    assert table_counts(deployment) == counts
    mine = await api.get(f"/ticket/{tid}", role="pos")
    assert mine.status == 200 and mine.body["activeStatus"] is True  # untouched


# --- SQL injection ----------------------------------------------------------------------------

INJECTIONS = ["' OR '1'='1", "' OR 1=1 --", "x'; DROP TABLE tickets; --", "\" OR \"\"=\"", "1; DELETE FROM events",
              "%' OR traveller_id LIKE '%", "trav-a' UNION SELECT * FROM credentials --", "*", "%", "_",
              "\x00' OR 1=1", "') OR ('1'='1", "1' AND (SELECT count(*) FROM sqlite_master) > 0 --"]


async def test_sql_injection_in_filters_sorts_and_paths_changes_nothing(make_server):
    d = make_server(rate_limit=HIGH_LIMIT)
    async with aiohttp.ClientSession() as session:
        api = Api(d, session)
        tids = [await api.ticket_id(traveller, requestId=f"req-{traveller}") for traveller in ("trav-a", "trav-b")]
        await api.put(f"/ticket/{tids[1]}/revoke", role="pos")  # a blacklist entry to read
        assert (await api.post("/validation", [event(tids[0], "inj-1")], role="val")).status == 200
        before = table_counts(d)
        assert before["tickets"] == 2 and before["events"] == 1 and before["deny_list"] >= 1

        async def expect(path: str, status: int, *, role: str = "pos", params: Any = None, method: str = "GET",
                         body: Any = None) -> Any:
            reply = await api.call(method, path, role=role, params=params, json_body=body)
            assert reply.status == status, (method, path, params, reply)
            return reply

        for payload in INJECTIONS:
            if "\x00" in payload:  # text no store keeps: a 400 naming the parameter, before any query
                reply = await expect("/ticket", 400, params={"travellerId": payload})
                assert reply.body["details"][0]["field"] == "travellerId"
                await expect(f"/ticket/{quote(payload, safe='')}", 400)
                continue
            # travellerId / requestId: plain values, so nothing matches
            for params in ({"travellerId": payload}, {"travellerId": "trav-a", "requestId": payload},
                           {"travellerId": payload, "active": "true", "refundable": "false"}):
                reply = await expect("/ticket", 200, params=params)
                assert reply.body == [] and reply.headers["X-Total-Count"] == "0", (params, reply)
            # sort fields and orders go through an allow-list: anything else is 400
            await expect("/ticket", 400, params={"travellerId": "trav-a", "sortField": payload})
            await expect("/ticket", 400, params={"travellerId": "trav-a", "sortField": f"issuedAt {payload}"})
            await expect("/ticket", 400, params={"travellerId": "trav-a", "sortOrder": f"asc {payload}"})
            await expect(f"/ticket/{tids[0]}/event", 400, params={"sortField": payload})
            await expect(f"/ticket/{tids[0]}/event", 400, params={"sortOrder": payload})
            # numbers: 400
            for name in ("limit", "offset", "page", "pageSize"):
                await expect("/ticket", 400, params={"travellerId": "trav-a", name: f"1 {payload}"})
            await expect("/blacklist", 400, role="val", params={"blacklistEntryId": f"0 {payload}"})
            await expect("/blacklist", 400, role="val", params={"limit": payload})
            # path ids: not found (quoted into the URL, so they arrive whole)
            quoted = quote(payload, safe="")
            await expect(f"/ticket/{quoted}", 404)
            await expect(f"/ticket/{quoted}/event", 404)
            await expect(f"/ticket/{tids[0]}/event/{quoted}", 404)
            await expect(f"/ticket/{quoted}/revoke", 404, method="PUT")
            await expect(f"/ticket/{quoted}/refundStatus", 404, method="PUT")
            await expect(f"/ticketbundle/{quoted}", 404)
            reply = await expect(f"/validation/{quoted}", 201, role="val", method="POST",
                                 body=event(payload, f"inj-path-{uuid.uuid4().hex}"))
            assert reply.body["ticketEvent"]["ticketId"] == payload  # stored as data, verbatim
            stored = await expect(reply.headers["Location"].split(d.config.base_path, 1)[1], 200, role="val")
            assert stored.body["ticketEvent"]["ticketId"] == payload  # the Location leads back to it
        # the bad numbers the brief names, once more, without any SQL in them
        for value in ("0", "101", "-1", "1e3", "0x10", "\u00b2", "\u0661", "9" * 40):
            await expect("/ticket", 400, params={"travellerId": "trav-a", "limit": value})
        for value in ("-1", "1e3", "\u00b2", "9" * 40):
            await expect("/blacklist", 400, role="val", params={"blacklistEntryId": value})

        after = table_counts(d)
        injected_events = len([p for p in INJECTIONS if "\x00" not in p])  # one POST /validation/{id} each
        assert after == {**before, "events": before["events"] + injected_events,
                         "uses": before["uses"] + injected_events}  # each an accepted validation
        assert {r[0] for r in db_rows(d, "SELECT ticket_id FROM tickets")} == set(tids)
        # the legitimate queries still give the right answers
        listed = await expect("/ticket", 200, params={"travellerId": "trav-a", "sortField": "validFrom",
                                                      "sortOrder": "desc", "limit": "5"})
        assert [t["ticketId"] for t in listed.body] == [tids[0]]
        by_request = await expect("/ticket", 200, params={"travellerId": "trav-a", "requestId": "req-trav-a"})
        assert [t["ticketId"] for t in by_request.body] == [tids[0]]
        entries = (await expect("/blacklist", 200, role="val", params={"blacklistEntryId": "0", "limit": "10"})).body
        assert tids[1] in {e.get("ticketId") for e in entries}
        await still_answers(api)


async def test_hostile_event_bodies_are_4xx_and_change_nothing(make_server):
    d = make_server(rate_limit=HIGH_LIMIT, max_batch_events=50)
    async with aiohttp.ClientSession() as session:
        api = Api(d, session)
        before = table_counts(d)
        bodies: list[Any] = [
            [event("T", "h-1", time="0001-01-01T00:00:00+14:00")],  # no UTC form: was a 500
            [event("T", "h-2", time="9999-12-31T23:59:59-14:00")],
            [event("T" * 201, "h-3")], [event("T", "x" * 201)], [event("T", "h-4", eventResult=2 ** 70)],
            [event("T", "h-5", geo={"lat": float("nan"), "long": 0.0})], [event("T", "h-5", geo="x")],
            [event("T", f"h-6-{i}") for i in range(51)],  # over max_batch_events
            [event("T", "h-7")] + [{"ticketId": "T"}],  # all or nothing: the good one is not stored
            {"not": "a list"}, "[]" * 10, None,
        ]
        for body in bodies:
            reply = await api.post("/validation", body, role="val")
            assert 400 <= reply.status < 500, (str(body)[:100], reply)
        raw_bodies = [b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe garbage", b'[{"ticketId": "T", "time": 1e999}]',
                      json.dumps([event("T", "h-8")]).encode().replace(b'"eventResult": 0', b'"eventResult": NaN')]
        for raw in raw_bodies:
            reply = await api.call("POST", "/validation", role="val", data=raw,
                                   headers={"Content-Type": "application/json"})
            assert 400 <= reply.status < 500, (raw[:60], reply)
        single = await api.post("/validation/T", event("T", "h-9", time="0001-01-01T00:00:00+14:00"), role="val")
        assert single.status == 400, single
        assert table_counts(d) == before
        await still_answers(api)
