"""Attacks on the rate limits by another participant, over real HTTP on 127.0.0.1 with tokens
signed by that participant's real key."""
from __future__ import annotations

from collections import Counter

import aiohttp

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
