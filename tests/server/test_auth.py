"""GET /auth/{entityId}, X-BoB-AuthToken verification (401) and roles (403)."""
from __future__ import annotations

import re

import base64
import json
import time

import pytest

from mtb import b64url_encode
from server import jws
from server.cli import add_credential

from .conftest import OTHER_PID, PASSWORD, PID


def _segment(value: dict) -> str:
    return b64url_encode(json.dumps(value).encode())


def claims(role: str = "admin", sub: str = "admin", **over) -> dict:
    now = int(time.time())
    return {"iss": str(PID), "sub": sub, "iat": now, "exp": now + 600, "bobAuthZ": role, **over}


async def test_auth_returns_an_es256_jwt_with_the_bob_claims(api, deployment):
    reply = await api.get("/auth/pos1", role=None, headers={"Authorization": deployment.basic("pos1")})
    assert reply.status == 200, reply
    token = reply.body["jwtCompact"]
    header, body, _, signature = jws.unverified(token)
    assert header == {"alg": "ES256", "typ": "JWT", "kid": f"{PID}:auth-1"}
    assert body["iss"] == str(PID) and body["sub"] == "pos1" and body["bobAuthZ"] == "pos"
    assert body["exp"] - body["iat"] == deployment.config.token_lifetime_seconds
    assert len(signature) == 64
    # verifiable with the key the participant metadata publishes
    metadata = (await api.get("/participantMetadata", token=token)).body
    jwk = next(k for p in metadata if p["pid"] == PID for k in p["authtokenPublicKeys"])
    from mtb.keys import jwk_public_key
    jws.verify(token, lambda h, c: jwk_public_key(jwk))
    assert (await api.get("/ticket/none", token=token)).status == 404  # the token works


@pytest.mark.parametrize("entity,authorization", [
    ("pos1", None),
    ("pos1", "Bearer abc"),
    ("pos1", "Basic !!!notbase64"),
    ("pos1", "Basic " + base64.b64encode(b"no-colon").decode()),
    ("pos1", "Basic " + base64.b64encode(b"pos1:wrong").decode()),
    ("nobody", "Basic " + base64.b64encode(f"nobody:{PASSWORD}".encode()).decode()),
    ("pos1", "Basic " + base64.b64encode(f"ins1:{PASSWORD}".encode()).decode()),  # user != entity
])
async def test_auth_refuses_bad_credentials(api, entity, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    reply = await api.get(f"/auth/{entity}", role=None, headers=headers)
    assert reply.status == 401, reply
    assert reply.body["code"] in ("missing_credentials", "invalid_credentials")
    assert reply.headers["WWW-Authenticate"].startswith("Basic")
    assert PASSWORD not in reply.text


async def test_missing_token_is_401(api):
    reply = await api.get("/blacklist", role=None)
    assert reply.status == 401 and reply.body["code"] == "missing_token"


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "a.b", "", "e30.e30.", "x" * 6000, "é"])
async def test_malformed_token_is_401(api, token):
    reply = await api.get("/blacklist", role=None, headers={"X-BoB-AuthToken": token} if token else {})
    assert reply.status == 401, reply
    assert reply.body["code"] in ("invalid_token", "missing_token")


async def test_oversized_token_header_is_refused_by_the_http_layer(api):
    reply = await api.get("/blacklist", role=None, headers={"X-BoB-AuthToken": "x" * 20000})
    assert reply.status == 400


async def test_expired_token_is_401(api, deployment):
    key = deployment.private_key("authtoken-key.pem")
    old = int(time.time()) - 7200
    token = jws.sign(key, {"typ": "JWT", "kid": f"{PID}:auth-1"}, claims(iat=old, exp=old + 600))
    reply = await api.get("/blacklist", token=token)
    assert reply.status == 401 and reply.body["code"] == "token_expired"


async def test_small_clock_skew_is_tolerated(api, deployment):
    key = deployment.private_key("authtoken-key.pem")
    now = int(time.time())
    for iat, exp in ((now + 20, now + 600), (now - 600, now - 10)):  # issued a little ahead; expired just now
        token = jws.sign(key, {"typ": "JWT", "kid": f"{PID}:auth-1"}, claims(iat=iat, exp=exp))
        assert (await api.get("/blacklist", token=token)).status == 200


@pytest.mark.parametrize("alg", ["none", "None", "HS256", "RS256", "es256", None])
async def test_any_alg_but_es256_is_401(api, deployment, alg):
    key = deployment.private_key("authtoken-key.pem")
    good = jws.sign(key, {"typ": "JWT", "kid": f"{PID}:auth-1"}, claims())
    _, payload, signature = good.split(".")
    header = {"typ": "JWT", "kid": f"{PID}:auth-1", **({"alg": alg} if alg is not None else {})}
    for sig in (signature, ""):  # with the real signature, and stripped (alg none style)
        reply = await api.get("/blacklist", token=f"{_segment(header)}.{payload}.{sig}")
        assert reply.status == 401, (alg, reply)
        assert "alg" in reply.body["message"]


async def test_hs256_with_the_public_key_as_secret_is_401(api, deployment):
    import hashlib
    import hmac
    metadata = json.loads((deployment.data_dir / "participant-metadata.json").read_text())
    secret = json.dumps(metadata[0]["authtokenPublicKeys"][0]).encode()
    signing_input = f"{_segment({'alg': 'HS256', 'kid': f'{PID}:auth-1'})}.{_segment(claims())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    reply = await api.get("/blacklist", token=f"{signing_input}.{b64url_encode(mac)}")
    assert reply.status == 401


async def test_token_signed_by_another_key_or_tampered_is_401(api, deployment):
    from mtb.keys import generate_es256_key
    forged = jws.sign(generate_es256_key(), {"typ": "JWT", "kid": f"{PID}:auth-1"}, claims())
    assert (await api.get("/blacklist", token=forged)).status == 401
    unknown_kid = jws.sign(deployment.private_key("authtoken-key.pem"), {"kid": f"{PID}:auth-9"}, claims())
    assert (await api.get("/blacklist", token=unknown_kid)).status == 401
    header, _, signature = deployment.token("val").split(".")
    tampered = f"{header}.{_segment(claims(role='admin', sub='val1'))}.{signature}"  # val promotes itself
    assert (await api.get("/blacklist", token=tampered)).status == 401
    # the issuer (MTB) key is not an auth-token key
    issuer_signed = jws.sign(deployment.private_key("issuer-key.pem"), {"kid": f"{PID}:issuer-1"}, claims())
    assert (await api.get("/blacklist", token=issuer_signed)).status == 401


@pytest.mark.parametrize("bad", [{"bobAuthZ": "root"}, {"sub": ""}, {"iss": "x"}, {"exp": "soon"},
                                 {"iat": None}])
async def test_bad_claims_are_401(api, deployment, bad):
    token = jws.sign(deployment.private_key("authtoken-key.pem"), {"kid": f"{PID}:auth-1"}, claims(**bad))
    assert (await api.get("/blacklist", token=token)).status == 401


async def test_removed_or_changed_credential_cuts_its_tokens_off(api, deployment):
    add_credential(deployment.data_dir, "temp1", "val", PASSWORD)
    reply = await api.get("/auth/temp1", role=None, headers={"Authorization": deployment.basic("temp1")})
    token = reply.body["jwtCompact"]
    assert (await api.get("/blacklist", token=token)).status == 200
    add_credential(deployment.data_dir, "temp1", "ins", PASSWORD, replace=True)
    assert (await api.get("/blacklist", token=token)).status == 401


async def test_foreign_participant_token_is_verified_with_its_published_key(api, deployment):
    key = deployment.private_key("other-auth.pem")
    token = jws.sign(key, {"typ": "JWT", "kid": f"{OTHER_PID}:auth-1"},
                     claims(role="ins", sub="other-inspector", iss=str(OTHER_PID)))
    assert (await api.get("/blacklist", token=token)).status == 200
    # ... but claiming our pid with its key fails
    wrong = jws.sign(key, {"typ": "JWT", "kid": f"{OTHER_PID}:auth-1"}, claims(role="ins", sub="x"))
    assert (await api.get("/blacklist", token=wrong)).status == 401


# Route -> roles that must be refused with 403 (the body does not matter: the role check comes first).
FORBIDDEN = [
    ("POST", "/validation", ("ins", "pos", "tvm")),
    ("POST", "/validation/T1", ("ins", "pos", "tvm")),
    ("POST", "/inspection", ("val", "pos", "tvm")),
    ("POST", "/inspection/T1", ("val", "pos", "tvm")),
    ("GET", "/device/kdk", ("pos", "tvm")),
    ("POST", "/device/key", ("ins",)),  # a validator may ask (BoB's test client does)
    ("POST", "/manifest", ("val", "ins")),
    ("GET", "/manifest/M1", ("val", "ins")),
    ("POST", "/product", ("val", "ins")),
    ("GET", "/product", ("val", "ins")),
    ("GET", "/productcat/fare", ("val", "ins")),
    ("GET", "/ticklemacros", ("pos", "tvm")),
    ("GET", "/fraudcheck", ("pos", "tvm")),
    ("POST", "/ticket", ("val", "ins")),
    ("GET", "/ticket?travellerId=x", ("val",)),
    ("GET", "/ticket/T1", ("val",)),
    ("PUT", "/ticket/T1/active", ("val", "ins")),
    ("PUT", "/ticket/T1/refundStatus", ("val", "ins")),
    ("PUT", "/ticket/T1/recoverStatus", ("val", "ins")),
    ("PUT", "/ticket/T1/revoke", ("val", "ins")),
    ("GET", "/ticket/T1/event", ("val",)),
    ("POST", "/ticketbundle", ("val", "ins")),
    ("GET", "/ticketbundle/B1", ("val",)),
]


@pytest.mark.parametrize("method,path,roles", FORBIDDEN)
async def test_wrong_role_is_403(api, method, path, roles):
    for role in roles:
        reply = await api.call(method, path, role=role, json_body={})
        assert reply.status == 403, (role, reply)
        assert reply.body["code"] == "wrong_role" and role in reply.body["message"]


async def test_feeds_are_open_to_every_role(api):
    for role in ("val", "ins", "pos", "tvm", "admin"):
        assert (await api.get("/blacklist", role=role)).status == 200
        assert (await api.get("/participantMetadata", role=role)).status == 200


def _concrete(path: str) -> str:
    return re.sub(r"\{\w+\}", "1", path)


async def test_every_token_route_is_401_without_or_with_a_bad_token(api):
    from server.app import SURFACES
    routes = [ep for surface in SURFACES for ep in surface.endpoints]
    checked = 0
    for route in routes:
        if route.public or route.basic:
            continue
        for token in (None, "bad.token.value"):
            reply = await api.call(route.method, _concrete(route.path), role=None, token=token, json_body={})
            assert reply.status == 401, (route.method, route.path, reply)
        checked += 1
    unguarded = {r.operation_id for r in routes if r.public or r.basic}
    assert unguarded == {"getOpenApi", "getAuthToken", "getHealth", "getMetrics"}
    assert checked == len(routes) - len(unguarded)


def test_verified_tokens_are_cached_until_they_expire_and_never_beyond(tmp_path, monkeypatch):
    from datetime import datetime, timedelta, timezone

    from server.auth import tokens
    from server.config import load_config
    from server.errors import ApiError
    from server.keyring import KeyRing

    from .conftest import make_data_dir
    data = make_data_dir(tmp_path / "d")
    ring = KeyRing.load(data, load_config(data))
    now = datetime.now(timezone.utc)
    verified = []
    real = tokens.verify_token
    monkeypatch.setattr(tokens, "verify_token", lambda *a: verified.append(a[0]) or real(*a))
    cache = tokens.TokenCache(size=2)
    token = tokens.issue_token(ring, "val1", "val", now, 60)
    assert cache.verify(token, ring, now, 0, 86400) == cache.verify(token, ring, now, 0, 86400)
    assert len(verified) == 1  # the second use did not verify the signature again
    with pytest.raises(ApiError) as tampered:  # other text, other key: verified, and refused
        cache.verify(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"), ring, now, 0, 86400)
    assert tampered.value.status == 401
    with pytest.raises(ApiError) as expired:  # from the cache, expiry still holds
        cache.verify(token, ring, now + timedelta(seconds=61), 0, 86400)
    assert expired.value.code == "token_expired"
    for sub in ("a", "b", "c"):
        cache.verify(tokens.issue_token(ring, sub, "val", now, 60), ring, now, 0, 86400)
    assert len(cache._principals) == 2  # bounded
