"""Attacks with hostile JWS texts (auth tokens, signed manifests), over real HTTP on 127.0.0.1:
each is refused as the token or the member it is, never as the request body."""
from __future__ import annotations

import json

import pytest

from mtb import b64url_encode

DEEP = "[" * 2000 + "]" * 2000  # fits the 8 KB a token may take, nests deeper than the JSON parser goes


def jws_text(header: str, payload: str) -> str:
    return f"{b64url_encode(header.encode())}.{b64url_encode(payload.encode())}.AAAA"


HEADER = json.dumps({"alg": "ES256", "typ": "JWT", "kid": "1234:auth-1"})


@pytest.mark.parametrize("header, payload", [(HEADER, '{"sub": ' + DEEP + "}"),
                                             ('{"alg": "ES256", "kid": ' + DEEP + "}", "{}")])
async def test_a_deeply_nested_token_is_401_invalid_token(api, header, payload):
    reply = await api.get("/blacklist", token=jws_text(header, payload))
    assert reply.status == 401 and reply.body["code"] == "invalid_token", reply


async def test_a_deeply_nested_manifest_is_400_naming_the_manifest(api):
    manifest = jws_text('{"alg": "ES256", "typ": "JWT"}', '{"pid": ' + DEEP + "}")
    reply = await api.post("/ticket", {"manifestMtbTemplate": manifest}, role="pos")
    assert reply.status == 400, reply
    assert [d["field"] for d in reply.body["details"]] == ["manifestMtbTemplate"], reply
