"""``python -m server b2b ...``: the operator's commands for the employer side.

::

    b2b company add --data DIR --name NAME --product-id ID --fare-amount 49 --currency EUR
        [--vat-percent 7] [--zones A,B] [--modes bus,tram] [--plan split-pay-plan --contribution 29]
    b2b company list | enable | disable --company N
    b2b key add --data DIR --company N [--permissions view-employees,...] [--name TEXT]   # secret shown once
    b2b key list --company N | b2b key enable|disable --key KEY_ID
    b2b key permissions --key KEY_ID --permissions view-employees,...
    b2b integration add --data DIR --company N --name "Personio"
    b2b webhook add --data DIR --company N --url URL [--events a,b]                      # secret shown once
    b2b webhook list [--company N] | enable|disable --endpoint N | log --endpoint N
    b2b rollover --data DIR [--at 2026-05-01T00:05:00Z]
    b2b documents --data DIR
    b2b deliver --data DIR [--at TIME]

Every command prints JSON. Companies, keys, integrations and webhook endpoints are managed
through :mod:`.admin`, exactly as the HTTP admin API manages them. ``rollover``, ``documents`` and ``deliver`` run the job once, in this
process, against the same database the server uses, beside it and beside each other: the
store's locks, unique index and claims keep them from doing anything twice (server/b2b/store.py).
"""
from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mtb.timeutil import parse_time

from ..config import ServerConfig, load_config
from ..context import Context
from ..keyring import KeyRing
from ..store import StoreRunner, open_store
from ..errors import validation_details
from . import admin, webhooks
from .records import PERMISSIONS
from .service import B2B, render_documents, rollover
from .store import B2BStore


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


async def run_documents(data: Path) -> dict[str, Any]:
    b2b = open_b2b(data)
    try:
        return {"documents": await render_documents(b2b), "pending": await b2b.run(b2b.store.pending_documents)}
    finally:
        b2b.ctx.run.close()


async def run_deliver(data: Path, at: datetime | None) -> dict[str, Any]:
    from .delivery import deliver_due, webhook_session

    b2b = open_b2b(data)
    try:
        async with webhook_session(b2b) as session:
            attempts = await deliver_due(b2b, session, at)
        return {"attempts": attempts, "pending": await b2b.run(b2b.store.pending_deliveries)}
    finally:
        b2b.ctx.run.close()


def _need(value: Any, name: str) -> Any:
    if value is None:
        raise B2BUsageError(f"{name} is required")
    return value


def _admin(args: argparse.Namespace, action: Callable[[B2BStore, datetime], Any]) -> Any:
    """Run one of :mod:`.admin`'s operations (the same the HTTP admin API runs) on the data
    directory's store; its refusals become the CLI's error line."""
    _, store = _store(args.data)
    try:
        return action(store, datetime.now(timezone.utc))
    except ValidationError as exc:
        raise B2BUsageError("; ".join(f"{d['field']}: {d['message']}" for d in validation_details(exc))) from None
    except admin.NotFound as exc:
        raise B2BUsageError(str(exc)) from None
    finally:
        store.db.close()


def _company(args: argparse.Namespace) -> Any:
    if args.action == "add":
        if not args.name or not args.product_id or args.fare_amount is None or not args.currency:
            raise B2BUsageError("company add needs --name, --product-id, --fare-amount and --currency")
        fare = {"amount": args.fare_amount, "currency": args.currency, "vatPercent": args.vat_percent}
        product = {"productId": args.product_id, "category": args.category, "zones": _csv(args.zones),
                   "modes": _csv(args.modes), "fare": fare}
        plan = {"type": args.plan, "employeeContributionAmount": args.contribution}
        body = {"name": args.name, "product": product, "plan": plan}
        return _admin(args, lambda store, now: admin.create_company(store, admin.CompanyIn.model_validate(body), now))
    if args.action == "list":
        return _admin(args, lambda store, now: admin.list_companies(store))
    company = _need(args.company, "--company")
    patch = {"apiEnabled": args.action == "enable"}
    return _admin(args, lambda store, now: admin.update_company(store, company, admin.CompanyPatch.model_validate(patch)))


def _key(args: argparse.Namespace) -> Any:
    if args.action == "add":
        company = _need(args.company, "--company")
        body = {"permissions": _csv(args.permissions) or None, "name": args.name}
        return _admin(args, lambda store, now: admin.create_key(store, company, admin.ApiKeyIn.model_validate(body), now))
    if args.action == "list":
        company = _need(args.company, "--company")
        return _admin(args, lambda store, now: admin.list_keys(store, company))
    key_id = _need(args.key, "--key")
    patch = ({"permissions": _csv(_need(args.permissions, "--permissions"))} if args.action == "permissions"
             else {"enabled": args.action == "enable"})
    return _admin(args, lambda store, now: admin.update_key(store, key_id, admin.ApiKeyPatch.model_validate(patch)))


def _integration(args: argparse.Namespace) -> Any:
    company = _need(args.company, "--company")
    if args.action == "add":
        body = {"name": args.name} if args.name else {}
        return _admin(args, lambda store, now: admin.create_integration(store, company,
                                                                        admin.IntegrationIn.model_validate(body), now))
    return _admin(args, lambda store, now: admin.list_integrations(store, company))


def _webhook(args: argparse.Namespace) -> Any:
    if args.action == "add":
        company = _need(args.company, "--company")
        body = {"url": _need(args.url, "--url"), "events": _csv(args.events) or None}
        return _admin(args, lambda store, now: admin.create_endpoint(store, company,
                                                                     admin.EndpointIn.model_validate(body), now))
    if args.action == "list":
        return _admin(args, lambda store, now: admin.list_endpoints(store, args.company))
    endpoint = _need(args.endpoint, "--endpoint")
    if args.action == "log":
        return _admin(args, lambda store, now: admin.delivery_log(store, endpoint, args.limit))
    patch = admin.EndpointPatch(enabled=args.action == "enable")
    return _admin(args, lambda store, now: admin.update_endpoint(store, endpoint, patch, now))


COMMANDS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "company": _company, "key": _key, "integration": _integration, "webhook": _webhook,
    "rollover": lambda a: asyncio.run(run_rollover(a.data, _at(a.at))),
    "documents": lambda a: asyncio.run(run_documents(a.data)),
    "deliver": lambda a: asyncio.run(run_deliver(a.data, _at(a.at) if a.at else None)),
}


def add_parser(sub: Any) -> None:
    b2b = sub.add_parser("b2b", help="the employer side: companies, API keys, HR integrations, webhooks, roll-over")
    b2b.add_argument("what", choices=tuple(COMMANDS))
    b2b.add_argument("action", nargs="?", default="list",
                     choices=("add", "list", "enable", "disable", "log", "permissions"))
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
