"""The Token API and the whitelist over real HTTP: tokens registered by the operator (with a
serial) or by issuing tickets bound to them; revoking a token is a deny-list entry, so the
revocation list, a token's ``revoked`` and the validators' deny list agree."""
from __future__ import annotations

import uuid

import pytest

import mtb
from mtb import keys
from mtb.timeutil import parse_time
from server import cli

from .conftest import PID


def token_jwk(kid: str = "card") -> dict:
    return keys.public_jwk(keys.generate_es256_key(), kid)


def serial() -> int:
    return uuid.uuid4().int % 10 ** 12


async def test_tokens_by_serial_and_by_thumbprint(api, deployment):
    number = serial()
    jwk = token_jwk()
    token_id = cli.register_token(deployment.data_dir, 16, number, jwk)
    assert token_id == keys.jwk_thumbprint(jwk)
    found = await api.get("/token", role="val", params={"pid": 16, "serial": number})
    assert found.status == 200, found
    [info] = found.body
    assert info == {"serial": number, "publicKey": jwk, "revoked": False, "thumbprint": token_id, "pid": 16}
    assert (await api.get(f"/token/{token_id}", role="pos")).body == info
    assert (await api.get(f"/token/{token_id}/revoked", role="ins")).body == {"revoked": False}
    for pid, other in ((16, number + 1), (17, number)):  # an unknown serial is an empty list, not a 404
        reply = await api.get("/token", role="val", params={"pid": pid, "serial": other})
        assert reply.status == 200 and reply.body == []
    unknown = await api.get(f"/token/{mtb.b64url_encode(b'x' * 32)}", role="val")
    assert unknown.status == 404 and unknown.body["code"] == "token_not_found"
    for params in ({"pid": 16}, {"serial": 1}, {"pid": "x", "serial": 1}):
        assert (await api.get("/token", role="val", params=params)).status == 400


async def test_revoking_a_token_is_one_fact_seen_from_the_token_api_and_the_deny_list(api, deployment):
    token_id = cli.register_token(deployment.data_dir, 16, serial(), token_jwk())
    revocations = await api.get("/token/revocationlist", role="val")
    start = revocations.body[-1]["entryId"] if revocations.body else 0
    entry_id = cli.revoke_token(deployment.data_dir, token_id)
    listed = await api.get("/token/revocationlist", role="val", params={"revocationListStartEntryId": start})
    assert [(e["entryId"], e["thumbprint"]) for e in listed.body] == [(entry_id, token_id)]
    assert parse_time(listed.body[0]["expire"]) > parse_time("2026-01-01T00:00:00Z")
    deny = await api.get("/blacklist", role="val", params={"blacklistEntryId": entry_id - 1, "limit": 1})
    assert deny.body == [{"blacklistEntryId": entry_id, "tokenId": token_id, "expire": listed.body[0]["expire"]}]
    assert (await api.get(f"/token/{token_id}", role="val")).body["revoked"] is True
    lifted = cli.revoke_token(deployment.data_dir, token_id, revoke=False)
    assert (await api.get(f"/token/{token_id}/revoked", role="val")).body == {"revoked": False}
    later = await api.get("/token/revocationlist", role="val", params={"revocationListStartEntryId": entry_id})
    assert [e["entryId"] for e in later.body] == [lifted]  # the lifting entry, already expired
    with pytest.raises(cli.UsageError):
        cli.revoke_token(deployment.data_dir, "no-such-token")


async def test_tickets_bound_to_a_token_are_whitelisted_and_register_the_token(api):
    jwk = token_jwk("phone")
    token_id = keys.jwk_thumbprint(jwk)
    before = await api.get("/whitelist", role="val", params={"whitelistEntryId": 0, "limit": 10000})
    start = before.body[-1]["id"] if before.body else 0
    reply = await api.issue("trav-token", tokenPublicKey=jwk, tokenIssuer=77, manifest={"count": 2})
    assert reply.status == 201, reply
    first, second = reply.body["ticketIds"]
    entries = (await api.get("/whitelist", role="val", params={"whitelistEntryId": start})).body
    assert [e["kid"] for e in entries] == [token_id, token_id]
    assert entries[1]["id"] > entries[0]["id"] > start
    for entry, ticket_id in zip(entries, (first, second)):
        decoded = mtb.decode(entry["mtb"])  # base64url of the signed container
        assert decoded.transport == "base64url" and [t.ticket_id for t in decoded.tickets] == [ticket_id]
        start_text, _, end_text = entry["val"].partition("/")
        assert parse_time(end_text) - parse_time(start_text) == decoded.tickets[0].valid_until - \
            decoded.tickets[0].valid_from
    info = (await api.get(f"/token/{token_id}", role="val")).body
    assert info["pid"] == 77 and "serial" not in info and info["publicKey"] == jwk
    # by id alone, once it is known; later entries come after
    again = await api.issue("trav-token", tokenId=token_id)
    assert again.status == 201
    newer = (await api.get("/whitelist", role="ins", params={"whitelistEntryId": entries[1]["id"]})).body
    assert [e["kid"] for e in newer] == [token_id]


@pytest.mark.parametrize("call,field,status", [
    ({"tokenId": "never-registered"}, "tokenId", 422),
    ({"tokenPublicKey": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}}, "tokenPublicKey", 422),
    ({"tokenPublicKey": {"kty": "oct", "k": "c2VjcmV0"}}, "tokenPublicKey", 422),
    ({"tokenPublicKey": {**token_jwk(), "d": "c2VjcmV0"}}, "tokenPublicKey", 422),
    ({"tokenPublicKey": token_jwk(), "tokenId": "not-its-thumbprint"}, "tokenId", 422),
])
async def test_bad_token_bindings_issue_nothing(api, call, field, status):
    reply = await api.issue("trav-badtoken", **call)
    assert reply.status == status, reply
    assert reply.body["details"][0]["field"] == field


async def test_a_revoked_token_gets_no_tickets(api, deployment):
    jwk = token_jwk()
    token_id = cli.register_token(deployment.data_dir, PID, None, jwk)
    cli.revoke_token(deployment.data_dir, token_id)
    reply = await api.issue("trav-revoked-token", tokenId=token_id)
    assert reply.status == 409 and reply.body["code"] == "token_revoked"


def test_thumbprints_follow_rfc_7638():
    # RFC 7638, section 3.1: the example RSA key and its thumbprint
    n = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknj"
         "hMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQ"
         "vRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzK"
         "nqDKgw")
    jwk = {"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}
    assert keys.jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    ec = token_jwk()
    assert keys.jwk_thumbprint(ec) == keys.jwk_thumbprint({k: ec[k] for k in ("kty", "crv", "x", "y")})
