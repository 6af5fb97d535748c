"""Hostile input to the BoB API over real HTTP on 127.0.0.1: what the server writes about it
(answers, logs) stays bounded, whatever the client sends."""
from __future__ import annotations

import logging
import uuid

from .conftest import event


async def test_a_huge_unknown_member_name_is_not_logged_whole(api, caplog):
    """Unknown members over 2 KB are dropped and their names logged: a name of half a megabyte,
    120 requests a minute, must not become a log line of half a megabyte each."""
    name = "n" * 500_000
    with caplog.at_level(logging.WARNING, logger="server"):
        reply = await api.post("/validation", [event(f"T-{uuid.uuid4()}", "L-huge-name", **{name: 1})], role="val")
    assert reply.status == 200, reply
    logged = [r.getMessage() for r in caplog.records if "dropped unknown members" in r.getMessage()]
    assert logged and max(len(m) for m in logged) < 2_000, [len(m) for m in logged]
