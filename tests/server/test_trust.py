"""Trust boundaries (issue 11.1): what another participant's token may do here, the time
claims of any token, path ids, and the path segments the server writes."""
from __future__ import annotations

import json
import time
import uuid
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from server import jws
from server.config import ServerConfig

from .conftest import OTHER_PID, PID, Api, event

NOW = int(time.time())


def token(d: Any, *, pid: int = PID, sub: str = "admin", role: str = "admin", **claims: Any) -> str:
    """A token signed with the real key of ``pid`` (ours or the second participant's)."""
    key_file = "authtoken-key.pem" if pid == PID else "other-auth.pem"
    now = int(time.time())
    body = {"iss": str(pid), "sub": sub, "iat": now, "exp": now + 600, "bobAuthZ": role, **claims}
    return jws.sign(d.private_key(key_file), {"typ": "JWT", "kid": f"{pid}:auth-1"}, body)


def raw_token(d: Any, claims_json: str) -> str:
    """Claims given as JSON text, so that Infinity, NaN and 1e400 reach the server as sent."""
    from mtb import b64url_encode
    header = b64url_encode(json.dumps({"alg": "ES256", "typ": "JWT", "kid": f"{PID}:auth-1"}).encode())
    payload = b64url_encode(claims_json.encode())
    from mtb.keys import es256_sign
    signature = es256_sign(d.private_key("authtoken-key.pem"), f"{header}.{payload}".encode())
    return f"{header}.{payload}.{b64url_encode(signature)}"


def deny_count(d: Any) -> int:
    return d.rows("SELECT count(*) AS n FROM deny_list")[0][0]


async def test_another_participant_cannot_make_itself_admin(api, deployment):
    """Participant 4321 signs ``bobAuthZ: admin`` for itself: it may neither read nor revoke our
    tickets, and nothing reaches the deny list."""
    tid = await api.ticket_id("trav-trust-admin")
    before = deny_count(deployment)
    for sub in ("admin", "pos-of-4321", "anyone"):
        forged = token(deployment, pid=OTHER_PID, sub=sub, role="admin")
        for method, path in (("GET", f"/ticket/{tid}"), ("PUT", f"/ticket/{tid}/revoke"),
                             ("GET", "/ticket?travellerId=trav-trust-admin"), ("GET", "/blacklist")):
            reply = await api.call(method, path, token=forged)
            assert reply.status == 403, (sub, method, path, reply)
            assert reply.body["code"] == "not_granted"
    assert (await api.get(f"/ticket/{tid}", role="pos")).body["state"] == "active"
    assert deny_count(deployment) == before


def test_config_never_grants_admin_nor_our_own_pid():
    with pytest.raises(ValidationError):
        ServerConfig(participants={str(OTHER_PID): {"roles": ["val", "admin"]}})
    with pytest.raises(ValueError):
        ServerConfig(pid=PID, participants={str(PID): {"roles": ["val"]}})
    with pytest.raises(ValidationError):
        ServerConfig(participants={"other": {"roles": ["val"]}})


async def test_other_participants_get_only_the_roles_granted_and_only_known_entities_write(make_server):
    d = make_server(participants={str(OTHER_PID): {"roles": ["val"], "entities": ["their-bus-1"]}})
    async with aiohttp.ClientSession() as session:
        api = Api(d, session)
        reader = token(d, pid=OTHER_PID, sub="someone", role="val")
        assert (await api.get("/blacklist", token=reader)).status == 200  # a granted role reads the feeds
        stranger = await api.post("/validation", [event("T-x", "L-1")], token=reader)
        assert stranger.status == 403 and stranger.body["code"] == "unknown_entity"  # an unknown sub may not write
        known = token(d, pid=OTHER_PID, sub="their-bus-1", role="val")
        stored = await api.post("/validation", [event("T-x", "L-1")], token=known)
        assert stored.status == 200, stored
        for role in ("ins", "pos", "tvm"):  # not granted
            other = token(d, pid=OTHER_PID, sub="their-bus-1", role=role)
            assert (await api.get("/blacklist", token=other)).status == 403


async def test_by_default_other_participants_get_nothing(make_server):
    d = make_server(participants={})
    async with aiohttp.ClientSession() as session:
        api = Api(d, session)
        for role in ("val", "ins", "pos", "tvm", "admin"):
            reply = await api.get("/blacklist", token=token(d, pid=OTHER_PID, sub=f"{role}-of-4321", role=role))
            assert reply.status == 403 and reply.body["code"] == "not_granted", (role, reply)


async def test_a_wildcard_grant_covers_every_listed_participant(make_server):
    d = make_server(participants={"*": {"roles": ["ins"]}})
    async with aiohttp.ClientSession() as session:
        api = Api(d, session)
        assert (await api.get("/blacklist", token=token(d, pid=OTHER_PID, sub="i", role="ins"))).status == 200
        assert (await api.get("/blacklist", token=token(d, pid=OTHER_PID, sub="i", role="val"))).status == 403


@pytest.mark.parametrize("claims", [
    '"exp": Infinity', '"exp": 1e400', '"exp": -Infinity', '"exp": NaN', '"iat": NaN', '"iat": Infinity',
    '"exp": 1.5e9', '"exp": 4102444801', '"iat": -1', '"iat": 0', '"exp": true', '"exp": "9999999999"',
    '"exp": 99999999999999999999999999', '"nbf": 4000000000', '"nbf": NaN', '"nbf": "soon"',
])
async def test_time_claims_must_be_finite_whole_seconds_in_range(api, deployment, claims):
    name = claims.split('"')[1]
    base = {"iss": str(PID), "sub": "admin", "bobAuthZ": "admin", "iat": NOW, "exp": NOW + 600}
    base.pop(name, None)
    text = json.dumps(base)[:-1] + ", " + claims + "}"
    reply = await api.get("/blacklist", token=raw_token(deployment, text))
    assert reply.status == 401, (claims, reply)
    assert reply.body["code"] in ("invalid_token", "token_expired")


async def test_whole_float_seconds_and_a_past_nbf_are_fine(api, deployment):
    now = int(time.time())
    text = json.dumps({"iss": str(PID), "sub": "admin", "bobAuthZ": "admin", "iat": float(now),
                       "exp": float(now + 600), "nbf": now - 10})
    assert (await api.get("/blacklist", token=raw_token(deployment, text))).status == 200


async def test_the_server_caps_a_tokens_life_whatever_exp_says(api, deployment):
    limit = deployment.config.max_token_lifetime_seconds
    now = int(time.time())
    ancient = token(deployment, iat=now - limit - 120, exp=now + 10 * 365 * 86400)
    reply = await api.get("/blacklist", token=ancient)
    assert reply.status == 401 and reply.body["code"] == "token_expired"
    foreign = token(deployment, pid=OTHER_PID, sub="val-of-4321", role="val", iat=now - limit - 120,
                    exp=now + 10 * 365 * 86400)
    assert (await api.get("/blacklist", token=foreign)).status == 401
    young = token(deployment, iat=now - 60, exp=now + 10 * 365 * 86400)
    assert (await api.get("/blacklist", token=young)).status == 200


@pytest.mark.parametrize("raw", ["%C2%B2", "%D9%A1", "1%C2%B2", "%EF%BC%91", "-1", "+1", "1.0", "0x1",
                                 "9" * 19, "%20%31"])
async def test_path_ids_that_are_not_ascii_digits_are_404(api, raw):
    tid = await api.ticket_id("trav-trust-path")
    reply = await api.get(f"/ticket/{tid}/event/{raw}", role="admin", encoded=True)
    assert reply.status == 404 and reply.body["code"] == "event_not_found", (raw, reply)


@pytest.mark.parametrize("ticket_id,encoded", [("..", "%2E%2E"), (".", "%2E"), ("a/b", "a%2Fb"),
                                               ("x?y#z", "x%3Fy%23z"), ("s p", "s%20p"), ("é", "%C3%A9")])
async def test_every_location_the_server_writes_is_percent_encoded(api, deployment, ticket_id, encoded):
    lid = uuid.uuid4().hex
    body = event(ticket_id, lid)
    reply = await api.call("POST", f"/validation/{encoded}", json_body=body, role="val", encoded=True)
    assert reply.status == 201, reply
    event_id = reply.body["ticketEvent"]["eventId"]
    assert reply.headers["Location"] == api.d.url(f"/ticket/{encoded}/event/{event_id}")  # absolute
    again = await api.call("POST", f"/validation/{encoded}", json_body=body, role="val", encoded=True)
    assert again.status == 303 and again.headers["Location"] == reply.headers["Location"]
    followed = await api.get(reply.headers["Location"][len(api.d.base):], role="val", encoded=True)
    assert followed.status == 200 and followed.body["ticketEvent"]["ticketId"] == ticket_id
