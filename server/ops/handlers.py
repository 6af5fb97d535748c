"""``GET {base}/health`` and ``GET {base}/metrics``: for load balancers, orchestrators and
Prometheus, which carry no BoB token.

``/health`` is public and cheap: the process answers, and the database answers a query (at most
once a second per process, so a flood of probes is not a flood of queries). ``/metrics`` is
public to the networks in ``metrics_allow`` (default: loopback) and 403 to the rest.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from ..context import ctx_of
from ..endpoint import PUBLIC, Api, Reply
from ..errors import ApiError, json_response
from .metrics import CONTENT_TYPE

api = Api("Operations API", "Health and metrics for the operator's tooling")
log = logging.getLogger("server.ops")

HEALTH_CACHE_SECONDS = 1.0
DATABASE_TIMEOUT_SECONDS = 3.0


class Health(BaseModel):
    status: str = Field(description="ok, or unavailable when the database does not answer")
    database: str = Field(description="ok, or why not (no connection details)")
    dialect: str = Field(description="sqlite or postgresql")
    schemaVersion: int
    pid: int = Field(description="the answering server process")


async def _database_ok(request: web.Request) -> str:
    ctx = ctx_of(request)
    checked = ctx.cache.get("health")
    now = time.monotonic()
    if checked and now - checked[0] < HEALTH_CACHE_SECONDS:
        return checked[1]
    try:
        await asyncio.wait_for(ctx.run(ctx.store.ping), DATABASE_TIMEOUT_SECONDS)
        verdict = "ok"
    except asyncio.TimeoutError:
        verdict = f"no answer within {DATABASE_TIMEOUT_SECONDS:g} s"
    except Exception as exc:  # noqa: BLE001 - any failure is "not healthy"; the detail goes to the log
        log.warning("health: database check failed: %s", type(exc).__name__)
        verdict = f"error ({type(exc).__name__})"
    ctx.cache["health"] = (now, verdict)
    return verdict


@api.endpoint("GET", "/health", op="getHealth", roles=PUBLIC,
              summary="Liveness, and whether the database answers",
              replies={200: Reply(Health), 503: Reply(Health, "The database does not answer")})
async def get_health(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    database = await _database_ok(request)
    body = {"status": "ok" if database == "ok" else "unavailable", "database": database,
            "dialect": ctx.store.db.dialect, "schemaVersion": ctx.store.schema_version, "pid": os.getpid()}
    return json_response(body, status=200 if database == "ok" else 503, headers={"Cache-Control": "no-store"})


def allowed(remote: str | None, networks: list[Any]) -> bool:
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return False
    return any(address in network for network in networks)


@api.endpoint("GET", "/metrics", op="getMetrics", roles=PUBLIC,
              summary="Prometheus metrics (text format 0.0.4), to the networks in metrics_allow",
              description="Requests by route and status, latency histograms, events ingested, deny-list size, "
                          "devices by state. With several worker processes, every worker's counters added up.",
              replies={200: Reply({"type": "string"}, "Prometheus text format", content_type="text/plain"),
                       403: "Not from a network in metrics_allow"})
async def get_metrics(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    if not allowed(request.remote, ctx.config.metrics_networks()):
        raise ApiError(403, "metrics are served to the networks in metrics_allow only", code="forbidden")
    now = datetime.now(timezone.utc)
    gauges = await ctx.run(ctx.store.fleet_gauges, now, now - timedelta(seconds=ctx.config.device_silent_seconds))
    body = await asyncio.to_thread(ctx.metrics.exposition, gauges)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})
