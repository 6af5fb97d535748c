"""Mounting the B2B API on the server's application: its routes under ``b2b.base_path``, its
own OpenAPI document beside the BoB one, the per-key limiter it is given, and its background
jobs (roll-over, document renderer, webhook sender) started and stopped with the application."""
from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from .. import openapi
from ..auth.ratelimit import Limiter
from ..context import Context
from ..endpoint import PUBLIC
from . import admin_handlers, handlers  # noqa: F401 - declare the endpoints on api
from .api import B2B_KEY, api, b2b_of
from .delivery import document_worker, rollover_worker, webhook_worker
from .service import B2B

SECURITY_SCHEMES = {"apiKey": {"type": "http", "scheme": "basic",
                               "description": "username: the API Key ID (a UUID); password: the API Key Secret"},
                    "bobAuthToken": {**openapi.BOB_SECURITY_SCHEMES["bobAuthToken"],
                                     "description": "the admin API (/admin/...): a token of the server's own "
                                                    "credential with role admin, from GET {base}/auth/{entityId} of "
                                                    "the BoB API"}}
SECURITY = {"basic": [{"apiKey": []}], "token": [{"bobAuthToken": []}]}
DESCRIPTION = ("The JobTicket B2B API on the bundled server: employees with their subscription, plan and monthly "
               "ticket (an MTB the validators accept), documents, HR sync, webhooks. Conventions: {\"data\": ...} "
               "envelopes, pages of at most 100 (perPage over 100 is a 400), sortField/sortOrder allow-lists, HAL "
               "_links, 100 requests a minute per API key (rolling), then 429 with Retry-After and a 5-minute "
               "block; JSON error bodies {code, message, details}. The operator's admin API (/admin/...: companies, "
               "API keys, HR integrations, webhook endpoints) takes an admin X-BoB-AuthToken instead. Decisions the "
               "public pages leave open are in server/b2b/README.md.")


@api.endpoint("GET", "/openapi.json", op="getB2BOpenApi", roles=PUBLIC, summary="This document",
              params=openapi.DOCUMENT_PARAMS, replies=openapi.DOCUMENT_REPLIES)
async def get_openapi(request: web.Request) -> web.Response:
    b2b = b2b_of(request)
    return openapi.document_response(request, b2b.ctx.cache, "b2b-openapi", lambda: openapi.build(
        api.title, DESCRIPTION, b2b.config.base_path, [api], SECURITY_SCHEMES, SECURITY))


def install(app: web.Application, ctx: Context, limiter: Limiter | None) -> None:
    """Serve the B2B API on ``app`` (a no-op when ``b2b.enabled`` is false); ``limiter`` counts
    each API key's requests (:func:`server.app.make_limiters` makes it beside the server's own,
    in the same place: in the database when the processes share their limits)."""
    config = ctx.config.b2b
    if not config.enabled:
        return
    b2b = B2B.create(ctx, limiter)
    app[B2B_KEY] = b2b
    api.add_routes(app.router, config.base_path)
    # The auth middleware finds an endpoint's roles by route name: the admin API's token and role
    # are checked there, like the BoB API's (the key-authenticated endpoints check their own).
    ctx.endpoints.update({ep.operation_id: ep for ep in api.endpoints})
    if config.jobs:
        app.cleanup_ctx.append(_jobs)


async def _jobs(app: web.Application):  # type: ignore[no-untyped-def]
    b2b = app[B2B_KEY]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(job(b2b, stop)) for job in (rollover_worker, webhook_worker, document_worker)]
    yield
    stop.set()
    b2b.wake.set()
    b2b.documents_due.set()
    for task in tasks:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(task, 15)
