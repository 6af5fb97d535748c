"""Mounting the B2B API on the server's application: its routes under ``b2b.base_path``, its
own OpenAPI document beside the BoB one, its rate limiter, and its background jobs (roll-over,
webhook sender) started and stopped with the application."""
from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from .. import openapi
from ..auth.ratelimit import RateLimiter
from ..context import Context
from ..endpoint import PUBLIC, Reply
from ..errors import json_response
from . import handlers  # noqa: F401 - declares the endpoints on api
from .api import B2B_KEY, api, b2b_of
from .delivery import rollover_worker, webhook_worker
from .service import B2B

SECURITY_SCHEMES = {"apiKey": {"type": "http", "scheme": "basic",
                               "description": "username: the API Key ID (a UUID); password: the API Key Secret"}}
SECURITY = {"basic": [{"apiKey": []}], "token": [{"apiKey": []}]}
DESCRIPTION = ("The JobTicket B2B API on the bundled server: employees with their subscription, plan and monthly "
               "ticket (an MTB the validators accept), documents, HR sync, webhooks. Conventions: {\"data\": ...} "
               "envelopes, pages of at most 100 (perPage over 100 is a 400), sortField/sortOrder allow-lists, HAL "
               "_links, 100 requests a minute per API key (rolling), then 429 with Retry-After and a 5-minute "
               "block; JSON error bodies {code, message, details}. Decisions the public pages leave open are in "
               "server/b2b/README.md.")


@api.endpoint("GET", "/openapi.json", op="getB2BOpenApi", roles=PUBLIC, summary="This document",
              replies={200: Reply({"type": "object"})})
async def get_openapi(request: web.Request) -> web.Response:
    b2b = b2b_of(request)
    cache = b2b.ctx.cache
    if "b2b-openapi" not in cache:
        cache["b2b-openapi"] = openapi.build(api.title, DESCRIPTION, b2b.config.base_path, [api], SECURITY_SCHEMES,
                                             SECURITY)
    return json_response(cache["b2b-openapi"])


def install(app: web.Application, ctx: Context) -> None:
    """Serve the B2B API on ``app`` (a no-op when ``b2b.enabled`` is false)."""
    config = ctx.config.b2b
    if not config.enabled:
        return
    rl = config.rate_limit
    limiter = RateLimiter(rl.requests, rl.window_seconds, rl.block_seconds) if rl.enabled else None
    b2b = B2B.create(ctx, limiter)
    app[B2B_KEY] = b2b
    api.add_routes(app.router, config.base_path)
    if config.jobs:
        app.cleanup_ctx.append(_jobs)


async def _jobs(app: web.Application):  # type: ignore[no-untyped-def]
    b2b = app[B2B_KEY]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(rollover_worker(b2b, stop)), asyncio.create_task(webhook_worker(b2b, stop))]
    yield
    stop.set()
    b2b.wake.set()
    for task in tasks:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(task, 15)
