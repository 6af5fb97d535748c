"""Who may read what, attacked over real HTTP on 127.0.0.1 with real tokens."""
from __future__ import annotations

from mtb import keys

from .conftest import OTHER_PID
from .test_load_and_attack import other_participant_token
from .test_tokens import token_jwk


async def test_only_validators_and_inspectors_read_the_whitelist(api, deployment):
    """The whitelist carries the whole signed MTB of every ticket bound to a token: what a
    validator or an inspector needs to check a card offline, and a bearer ticket to anyone who
    shows it as a code. A sales system or a ticket machine (ours, or another participant's,
    listed or not) has no use for it."""
    jwk = token_jwk("card-w")
    reply = await api.issue("trav-whitelist", tokenPublicKey=jwk)
    assert reply.status == 201, reply
    kid = keys.jwk_thumbprint(jwk)
    for role in ("val", "ins"):
        entries = await api.get("/whitelist", role=role, params={"whitelistEntryId": 0, "limit": 10000})
        assert entries.status == 200 and kid in [e["kid"] for e in entries.body], (role, entries)
    for role in ("pos", "tvm"):
        refused = await api.get("/whitelist", role=role)
        assert refused.status == 403 and refused.body["code"] == "wrong_role", (role, refused)
        foreign = await api.get("/whitelist", token=other_participant_token(deployment, f"{role}-of-{OTHER_PID}", role))
        assert foreign.status == 403, (role, foreign)
