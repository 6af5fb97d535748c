"""``python -m server b2b ...``: the operator's commands for the employer side.

::

    b2b company add --data DIR --name NAME --product-id ID --fare-amount 49 --currency EUR
        [--vat-percent 7] [--zones A,B] [--modes bus,tram] [--plan split-pay-plan --contribution 29]
    b2b company list | enable | disable --company N
    b2b key add --data DIR --company N [--permissions view-employees,...] [--name TEXT]   # secret shown once
    b2b key list --company N | b2b key enable|disable --key KEY_ID
    b2b integration add --data DIR --company N --name "Personio"
    b2b webhook add --data DIR --company N --url URL [--events a,b]                      # secret shown once
    b2b webhook list [--company N] | enable|disable --endpoint N | log --endpoint N
    b2b rollover --data DIR [--at 2026-05-01T00:05:00Z]
    b2b deliver --data DIR [--at TIME]

Every command prints JSON. ``rollover`` and ``deliver`` run the job once, in this process,
against the same database the server uses (SQLite: WAL lets both write, one at a time).
"""
from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp

from mtb.timeutil import format_extended, parse_time

from ..config import ServerConfig, load_config
from ..context import Context
from ..keyring import KeyRing
from ..store import StoreRunner, open_store
from . import keys, webhooks
from .records import PERMISSIONS, Product
from .service import B2B, rollover
from .store import B2BStore
from .subscription import Plan


class B2BUsageError(ValueError):
    pass


def _csv(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def _at(text: str | None) -> datetime:
    if not text:
        return datetime.now(timezone.utc)
    try:
        return parse_time(text)
    except ValueError:
        raise B2BUsageError(f"--at {text!r} is not an ISO 8601 time with a zone") from None


def _store(data: Path) -> tuple[ServerConfig, B2BStore]:
    config = load_config(data)
    return config, B2BStore(open_store(config.database_target()).db)


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def open_b2b(data: Path) -> B2B:
    """The B2B service on a data directory, outside the server (jobs run from the CLI)."""
    config = load_config(data)
    store = open_store(config.database_target())
    ctx = Context(config=config, keyring=KeyRing.load(data, config), store=store, run=StoreRunner(store),
                  limiter=None)
    return B2B.create(ctx)


async def run_rollover(data: Path, at: datetime) -> dict[str, Any]:
    b2b = open_b2b(data)
    try:
        return (await rollover(b2b, at)).as_json()
    finally:
        b2b.ctx.run.close()


async def run_deliver(data: Path, at: datetime | None) -> dict[str, Any]:
    from .delivery import deliver_due

    b2b = open_b2b(data)
    try:
        async with aiohttp.ClientSession() as session:
            attempts = await deliver_due(b2b, session, at)
        return {"attempts": attempts, "pending": await b2b.run(b2b.store.pending_deliveries)}
    finally:
        b2b.ctx.run.close()


def _company(args: argparse.Namespace) -> Any:
    config, store = _store(args.data)
    now = datetime.now(timezone.utc)
    try:
        if args.action == "add":
            if not args.name or not args.product_id or args.fare_amount is None or not args.currency:
                raise B2BUsageError("company add needs --name, --product-id, --fare-amount and --currency")
            vat = round(args.fare_amount * args.vat_percent / 100, 2)
            product = Product(args.product_id, tuple(_csv(args.zones)), tuple(_csv(args.modes)),
                              {"amount": args.fare_amount, "currency": args.currency, "vatAmount": vat,
                               "vatPercent": args.vat_percent}, args.category)
            plan = Plan(args.plan, args.contribution)
            return {"companyId": store.add_company(args.name, product, plan, now)}
        if args.action == "list":
            return [{"id": c.id, "name": c.name, "apiEnabled": c.api_enabled, "productId": c.product.product_id,
                     "zones": c.product.zones, "modes": c.product.modes, "fare": c.product.fare,
                     "plan": c.plan.type, "contribution": c.plan.contribution} for c in store.list_companies()]
        if not store.set_company_api(_need(args.company, "--company"), args.action == "enable"):
            raise B2BUsageError(f"no company {args.company}")
        return {"companyId": args.company, "apiEnabled": args.action == "enable"}
    finally:
        store.db.close()


def _need(value: Any, name: str) -> Any:
    if value is None:
        raise B2BUsageError(f"{name} is required")
    return value


def _key(args: argparse.Namespace) -> Any:
    _, store = _store(args.data)
    try:
        if args.action == "add":
            company = _need(args.company, "--company")
            if store.get_company(company) is None:
                raise B2BUsageError(f"no company {company}")
            key, secret = keys.new_key(company, _csv(args.permissions) or list(PERMISSIONS),
                                       datetime.now(timezone.utc), args.name)
            store.add_api_key(key)
            return {"keyId": key.key_id, "secret": secret, "permissions": sorted(key.permissions),
                    "note": "the secret is shown only now; it is stored hashed"}
        if args.action == "list":
            return [{"keyId": k.key_id, "name": k.name, "enabled": k.enabled, "permissions": sorted(k.permissions),
                     "createdAt": format_extended(k.created_at)}
                    for k in store.list_api_keys(_need(args.company, "--company"))]
        if not store.set_api_key(_need(args.key, "--key"), enabled=args.action == "enable"):
            raise B2BUsageError(f"no API key {args.key}")
        return {"keyId": args.key, "enabled": args.action == "enable"}
    finally:
        store.db.close()


def _integration(args: argparse.Namespace) -> Any:
    _, store = _store(args.data)
    try:
        company = _need(args.company, "--company")
        if store.get_company(company) is None:
            raise B2BUsageError(f"no company {company}")
        if args.action == "add":
            return {"integrationId": store.add_integration(company, args.name or "JobTicket+ API Integration",
                                                           datetime.now(timezone.utc))}
        from .records import Query
        found, _ = store.list_integrations(company, Query("id", "asc", 0, 1000))
        return [{"id": i.id, "name": i.name, "status": i.status, "lastSyncId": i.last_sync_id,
                 "lastSyncedAt": i.last_synced_at, "errors": i.errors} for i in found]
    finally:
        store.db.close()


def _endpoint_json(e: Any) -> dict[str, Any]:
    return {"id": e.id, "companyId": e.company_id, "url": e.url, "events": e.event_types, "enabled": e.enabled,
            "failingSince": e.failing_since, "disabledAt": e.disabled_at, "disabledReason": e.disabled_reason}


def _webhook(args: argparse.Namespace) -> Any:
    _, store = _store(args.data)
    now = datetime.now(timezone.utc)
    try:
        if args.action == "add":
            company = _need(args.company, "--company")
            url = _need(args.url, "--url")
            if not url.startswith(("https://", "http://")):
                raise B2BUsageError("--url must be an http(s) URL")
            events = _csv(args.events) or list(webhooks.EVENT_TYPES)
            unknown = set(events) - set(webhooks.EVENT_TYPES)
            if unknown or store.get_company(company) is None:
                raise B2BUsageError(f"unknown events {sorted(unknown)}" if unknown else f"no company {company}")
            secret = webhooks.new_secret()
            return {"endpointId": store.add_endpoint(company, url, events, secret, now), "secret": secret,
                    "note": "the signing secret is shown only now; see server/b2b/README.md for the scheme"}
        if args.action == "list":
            return [_endpoint_json(e) for e in store.list_endpoints(args.company)]
        endpoint = _need(args.endpoint, "--endpoint")
        if args.action == "log":
            return [{"deliveryId": d.id, "eventId": d.event_id, "type": d.event_type, "status": d.status,
                     "attempts": d.attempts, "lastStatusCode": d.last_status_code, "lastError": d.last_error,
                     "nextAttemptAt": d.next_attempt_at, "createdAt": d.created_at, "finishedAt": d.finished_at,
                     "log": store.attempts(d.id)} for d in store.deliveries(endpoint, args.limit)]
        if not store.set_endpoint_enabled(endpoint, args.action == "enable", now):
            raise B2BUsageError(f"no webhook endpoint {endpoint}")
        return _endpoint_json(store.get_endpoint(endpoint))
    finally:
        store.db.close()


COMMANDS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "company": _company, "key": _key, "integration": _integration, "webhook": _webhook,
    "rollover": lambda a: asyncio.run(run_rollover(a.data, _at(a.at))),
    "deliver": lambda a: asyncio.run(run_deliver(a.data, _at(a.at) if a.at else None)),
}


def add_parser(sub: Any) -> None:
    b2b = sub.add_parser("b2b", help="the employer side: companies, API keys, HR integrations, webhooks, roll-over")
    b2b.add_argument("what", choices=tuple(COMMANDS))
    b2b.add_argument("action", nargs="?", default="list",
                     choices=("add", "list", "enable", "disable", "log"))
    b2b.add_argument("--data", type=Path, required=True)
    b2b.add_argument("--company", type=int)
    b2b.add_argument("--name")
    b2b.add_argument("--product-id")
    b2b.add_argument("--category", default="adult")
    b2b.add_argument("--fare-amount", type=float)
    b2b.add_argument("--currency")
    b2b.add_argument("--vat-percent", type=float, default=0.0)
    b2b.add_argument("--zones", help="comma-separated")
    b2b.add_argument("--modes", help="comma-separated: bus, tram, train, metro, ferry")
    b2b.add_argument("--plan", default="fully-subsidized-plan", choices=("fully-subsidized-plan", "split-pay-plan"))
    b2b.add_argument("--contribution", type=float, help="the employee's monthly share (split-pay-plan)")
    b2b.add_argument("--permissions", help=f"comma-separated; default all: {', '.join(PERMISSIONS)}")
    b2b.add_argument("--key", help="API Key ID")
    b2b.add_argument("--url")
    b2b.add_argument("--events", help=f"comma-separated; default all: {', '.join(webhooks.EVENT_TYPES)}")
    b2b.add_argument("--endpoint", type=int)
    b2b.add_argument("--limit", type=int, default=50)
    b2b.add_argument("--at", help="the moment to run the job for (ISO 8601 with a zone); default now")
    b2b.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _print(COMMANDS[args.what](args))
    return 0
