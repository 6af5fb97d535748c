"""The uploader against a back office that answers as BoB's Validation API says (issue 12): a
batch ``POST /validation`` is all or nothing, answered 200 with no body. A small aiohttp
server on 127.0.0.1 plays that back office (the bundled server answers 201 with a list, which
the other sync tests cover)."""
from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from agent.sync import Transient

from ..conftest import NOW


def unsigned_token() -> str:
    """A token as the device reads it (it never verifies one; the server does)."""
    now = int(time.time())
    part = lambda data: base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")  # noqa: E731
    return f"{part({'alg': 'ES256'})}.{part({'iat': now, 'exp': now + 3600})}.c2ln"


class BobBackOffice:
    """Stores each batch whole and answers 200 without a body; ``fail_next`` answers 503 instead."""

    def __init__(self) -> None:
        self.stored: list[str] = []
        self.fail_next = 0

    async def auth(self, request: web.Request) -> web.Response:
        return web.json_response({"jwtCompact": unsigned_token()})

    async def validation(self, request: web.Request) -> web.Response:
        batch = await request.json()
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=503)
        self.stored += [event["localEventId"] for event in batch]
        return web.Response(status=200)


@pytest.fixture
async def bob() -> AsyncIterator[tuple[BobBackOffice, str]]:
    office = BobBackOffice()
    app = web.Application()
    app.router.add_get("/api/v3/auth/{entity}", office.auth)
    app.router.add_post("/api/v3/validation", office.validation)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield office, f"http://127.0.0.1:{port}/api/v3"
    await runner.cleanup()


def events(count: int) -> list[dict[str, Any]]:
    return [{"ticketId": "T1", "localEventId": f"L{i}", "eventType": "validation", "eventResult": 0,
             "time": NOW.isoformat()} for i in range(count)]


async def test_a_200_without_a_body_acknowledges_the_whole_batch(bob, make_device):
    office, base = bob
    device = make_device(base, batch_size=3)
    device.cache.record(events(7), [])
    assert await device.syncer.upload_pending() == 7
    assert device.cache.outbox_count() == 0
    assert office.stored == [f"L{i}" for i in range(7)]  # in three batches, each stored whole


async def test_a_failed_batch_stays_whole_in_the_outbox(bob, make_device):
    office, base = bob
    device = make_device(base)
    device.cache.record(events(4), [])
    office.fail_next = 1
    with pytest.raises(Transient):
        await device.syncer.upload_pending()
    assert device.cache.outbox_count() == 4 and office.stored == []  # nothing was taken for stored
    assert await device.syncer.upload_pending() == 4
    assert device.cache.outbox_count() == 0 and office.stored == [f"L{i}" for i in range(4)]
