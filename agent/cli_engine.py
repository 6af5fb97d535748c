"""Command-line verbs over the device cache: ``cache ...``, ``validate``, ``outbox list``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .cache import Cache
from .config import load_config
from .cli import UsageError, b64u, iso, print_json, read_input, scanned_bytes
from mtb.policy import Policy
from mtb.scan_context import Context, Geo, Validator
from .engine import Engine
from .stops import load_stops
from .sync.status import statuses_json
from mtb.timeutil import parse_time, utcnow

DEFAULT_DB = "agent-cache.db"


def open_cache(args: argparse.Namespace) -> Cache:
    return Cache(args.db)


def cmd_import_metadata(args: argparse.Namespace) -> int:
    try:
        document = json.loads(Path(args.file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read participant metadata {args.file}: {exc}") from exc
    with open_cache(args) as cache:
        store = cache.import_metadata(document)
    print_json({"issuerKeys": len(store.issuer_keys), "authtokenKeys": len(store.authtoken_keys),
                "skipped": store.skipped})
    return 0


def cmd_add_kdk(args: argparse.Namespace) -> int:
    with open_cache(args) as cache:
        cache.add_kdk(args.kid, args.key)
    print_json({"kid": args.kid})
    return 0


def cmd_deny(args: argparse.Namespace) -> int:
    kind, value = next((k, v) for k, v in (("ticket", args.ticket_id), ("traveller", args.traveller_id),
                                           ("token", args.token_id)) if v)
    with open_cache(args) as cache:
        cache.deny(kind, value, args.expire)
    print_json({"kind": kind, "value": value, "expire": args.expire})
    return 0


def cmd_import_stops(args: argparse.Namespace) -> int:
    areas = load_stops(args.file)
    with open_cache(args) as cache:
        count = cache.replace_stop_areas(areas)
    print_json({"stopAreas": count, "zones": sorted({a.zone_id for a in areas if a.zone_id})})
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """What an operator asks first: is it syncing, how old are its lists, what is waiting; each
    feed's and the uploader's last success and last error; the alarms, with when they end."""
    now = utcnow()
    with open_cache(args) as cache:
        times = {"metadataCheckedAt": cache.get_meta("metadata_checked_at"),
                 "lastUploadAt": cache.get_meta("last_upload_at"),
                 "oldestQueuedEventAt": cache.oldest_queued_at()}
        ages = {key.replace("At", "AgeSeconds"): round((now - parse_time(value)).total_seconds())
                for key, value in times.items() if value}
        keys = cache.keystore()
        print_json({"outbox": cache.outbox_count(parked=False), "parked": cache.outbox_count(parked=True),
                    "issuerKeys": len(keys.issuer_keys), "kdks": len(keys.kdks),
                    "denyEntries": cache.conn.execute("SELECT count(*) FROM deny_list").fetchone()[0],
                    "denyHighWater": cache.deny_high_water(), "stopAreas": len(cache.stop_areas()),
                    "fleetUses": cache.conn.execute("SELECT count(*) FROM fleet_uses").fetchone()[0],
                    "usesHighWater": cache.uses_high_water(), "tickleMacroSets": sorted(cache.tickle_sets()),
                    **{k: v for k, v in times.items() if v}, **ages,
                    "sync": statuses_json(cache, now), "alarms": cache.alarms()})
    return 0


def cmd_outbox_unpark(args: argparse.Namespace) -> int:
    with open_cache(args) as cache:
        count = cache.unpark()
    print_json({"unparked": count})
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .runtime import run_from_config

    return run_from_config(load_config(args.config), log_level=args.log_level)


def context_from_args(args: argparse.Namespace) -> Context:
    if (args.lat is None) != (args.long is None):
        raise UsageError("--lat and --long go together")
    return Context(time=args.at, validator=Validator(args.validator_id), mode="inspection" if args.inspect else "validation",
                   geo=Geo(args.lat, args.long) if args.lat is not None else None, zone=args.zone,
                   stop_area=args.stop_area, mode_of_transport=args.mode, operator_pid=args.operator_pid)


def cmd_validate(args: argparse.Namespace) -> int:
    policy = Policy(passback_window_s=args.passback_window, max_speed_kmh=args.max_speed_kmh,
                    device_time_window_s=args.device_time_window)
    ctx = context_from_args(args)
    raw = scanned_bytes(read_input(args.file))
    with open_cache(args) as cache:
        engine = Engine(cache, policy)
        try:
            decision = engine.validate_sync(raw, ctx)
        finally:
            engine.close()
    print_json(decision.to_json())
    return 0


def cmd_outbox_list(args: argparse.Namespace) -> int:
    with open_cache(args) as cache:
        events = cache.outbox(limit=args.limit) + cache.outbox(limit=args.limit, parked=True)
    if args.json:
        print_json([dict(e.body, _parked=e.parked, _attempts=e.attempts) for e in events])
        return 0
    for e in events:
        body: dict[str, Any] = e.body
        flag = " PARKED" if e.parked else ""
        print(f"{e.seq:>6} {body['time']} {e.event_type:<10} {body['eventResult']} {body['ticketId']}"
              f" {body.get('eventReason', '')}{flag}")
    print(f"{len(events)} event(s)")
    return 0


def add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=DEFAULT_DB, help=f"the device cache (default {DEFAULT_DB})")


def register(commands: Any) -> None:
    cache_cmd = commands.add_parser("cache", help="the device cache").add_subparsers(dest="sub", required=True)
    meta = cache_cmd.add_parser("import-metadata", help="load participant metadata (issuer keys)")
    meta.add_argument("file")
    meta.set_defaults(handler=cmd_import_metadata)
    kdk = cache_cmd.add_parser("add-kdk", help="add a device key-derivation key")
    kdk.add_argument("--kid", required=True)
    kdk.add_argument("--key", required=True, type=b64u)
    kdk.set_defaults(handler=cmd_add_kdk)
    deny = cache_cmd.add_parser("deny", help="add a local deny-list entry")
    which = deny.add_mutually_exclusive_group(required=True)
    which.add_argument("--ticket-id")
    which.add_argument("--traveller-id")
    which.add_argument("--token-id")
    deny.add_argument("--expire", required=True, type=iso)
    deny.set_defaults(handler=cmd_deny)
    stops = cache_cmd.add_parser("import-stops", help="load stop areas and zones from a GTFS stops.txt")
    stops.add_argument("file")
    stops.set_defaults(handler=cmd_import_stops)
    status = commands.add_parser("status", help="outbox, lists and their ages")
    status.set_defaults(handler=cmd_status)
    for sub in (meta, kdk, deny, stops, status):
        add_db(sub)

    validate = commands.add_parser("validate", help="validate or inspect one scanned MTB, offline")
    validate.add_argument("file", help="FILE (text or binary) or -")
    validate.add_argument("--at", required=True, type=iso)
    validate.add_argument("--lat", type=float)
    validate.add_argument("--long", type=float)
    validate.add_argument("--zone")
    validate.add_argument("--stop-area")
    validate.add_argument("--mode", help="mode of transport: bus, tram, train, metro, ferry")
    validate.add_argument("--validator-id", default="cli")
    validate.add_argument("--operator-pid", type=int, help="pid of the stop areas and zones named")
    validate.add_argument("--inspect", action="store_true", help="inspection mode (no passback)")
    validate.add_argument("--passback-window", type=float, default=Policy.passback_window_s, metavar="S")
    validate.add_argument("--max-speed-kmh", type=float, default=Policy.max_speed_kmh)
    validate.add_argument("--device-time-window", type=float, default=Policy.device_time_window_s, metavar="S")
    add_db(validate)
    validate.set_defaults(handler=cmd_validate)

    outbox = commands.add_parser("outbox", help="events waiting for the server").add_subparsers(dest="sub", required=True)
    listing = outbox.add_parser("list")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--limit", type=int, default=1000)
    add_db(listing)
    listing.set_defaults(handler=cmd_outbox_list)
    unpark = outbox.add_parser("unpark", help="retry events the server refused (after fixing the cause)")
    add_db(unpark)
    unpark.set_defaults(handler=cmd_outbox_unpark)

    run = commands.add_parser("run", help="run the agent on a device")
    run.add_argument("--config", required=True, help="the device's TOML config")
    run.add_argument("--log-level", default="INFO")
    run.set_defaults(handler=cmd_run)
