"""Attacks on the rate limits by another participant, over real HTTP on 127.0.0.1 with tokens
signed by that participant's real key."""
from __future__ import annotations

from collections import Counter

import aiohttp
import pytest

from .conftest import OTHER_PID, Api
from .test_load_and_attack import other_participant_token


async def test_another_participant_cannot_escape_its_limit_by_inventing_subs(make_server):
    """Participant 4321 may sign a token for any ``sub``; the ones we do not list may read. Were
    each its own credential, a new ``sub`` per request would never meet a limit: every unlisted
    ``sub`` of a participant shares one budget (a listed entity keeps its own)."""
    listed = f"val-of-{OTHER_PID}"
    d = make_server(rate_limit={"requests": 5, "window_seconds": 60, "block_seconds": 30, "roles": {}},
                    participants={str(OTHER_PID): {"roles": ["val"], "entities": [listed]}})
    async with aiohttp.ClientSession() as session:
        api = Api(d, session)
        statuses = Counter([(await api.get("/blacklist", token=other_participant_token(d, f"x-{i}", "val"))).status
                            for i in range(8)])
        assert statuses == {200: 5, 429: 3}, statuses
        known = await api.get("/blacklist", token=other_participant_token(d, listed, "val"))
        assert known.status == 200, known  # the listed device is not blocked by the strangers
        assert (await api.get("/blacklist", role="val")).status == 200  # nor are ours


@pytest.mark.parametrize("path", ["/api/v1/openapi.json", "/b2b/openapi.json"])
async def test_the_public_documents_are_fixed_bytes_with_a_strong_etag(deployment, path):
    """Anyone may fetch the OpenAPI documents, without a token or a limit: each is 70-140 KB of
    JSON, so it is serialised once (not per request, which made every anonymous fetch cost ~2 ms
    of the event loop the devices share) and carries a strong ETag that a client revalidates."""
    url = deployment.server.origin + path
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as first, session.get(url) as second:
            assert first.status == second.status == 200
            etag = first.headers.get("ETag")
            assert etag and etag.startswith('"') and etag == second.headers.get("ETag"), first.headers
            assert await first.read() == await second.read()
            assert (await first.json())["openapi"].startswith("3.")
        async with session.get(url, headers={"If-None-Match": etag}) as again:
            assert again.status == 304 and await again.read() == b""
