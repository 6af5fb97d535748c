"""Command-line verbs over the device cache: ``cache ...``, ``validate``, ``outbox list``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hardware import Fix
from mtb.timeutil import format_extended, parse_time, utcnow

from .cache import Cache
from .cache_file import CacheError
from .cli import SecretOnCommandLine, UsageError, iso, print_json, read_input, read_secret, scanned_bytes
from .config import load_config
from mtb.policy import Policy
from mtb.scan_context import Context, Geo, Validator
from .engine import Engine
from .place import implausible
from .stops import DEFAULT_RADIUS_M, StopArea, StopLocator, load_stops
from .sync.status import statuses_json

DEFAULT_DB = "agent-cache.db"


def open_cache(args: argparse.Namespace, *, read_only: bool = False) -> Cache:
    """Writers hold the cache alone (a running agent makes them fail with its pid); readers share it."""
    return Cache(args.db, read_only=read_only)


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
    key = read_secret(args.key_file, f"KDK {args.kid}")
    with open_cache(args) as cache:
        cache.add_kdk(args.kid, key)
    print_json({"kid": args.kid})
    return 0


def cmd_deny(args: argparse.Namespace) -> int:
    kind, value = next((k, v) for k, v in (("ticket", args.ticket_id), ("traveller", args.traveller_id),
                                           ("token", args.token_id)) if v)
    with open_cache(args) as cache:
        cache.deny(kind, value, args.expire)
    in_force = args.expire > utcnow()
    print_json({"kind": kind, "value": value, "expire": args.expire, "inForce": in_force})
    if not in_force:  # the newest entry for a value wins: one that has expired lifts the earlier ones
        print(f"note: --expire is in the past: this lifts any deny entry for {kind} {value}; it denies nothing",
              file=sys.stderr)
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
    with open_cache(args, read_only=True) as cache:
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
                    "serverTime": format_extended(server) if (server := cache.server_time()) else None,
                    "clockSkewSeconds": float(skew) if (skew := cache.get_meta("clock_skew_s")) else None,
                    "sync": statuses_json(cache, now), "alarms": cache.alarms()})
    return 0


def cmd_cache_check(args: argparse.Namespace) -> int:
    """What the agent does at start, more thoroughly (integrity_check): a test write, the schema
    version; a damaged file repaired or moved aside. A cache that checks out clears its alarm."""
    if not Path(args.db).is_file():
        raise CacheError(f"no cache at {args.db}: check the path (--db, or db in the agent's config)")
    with Cache(args.db, repair=True, thorough=True) as cache:
        if not cache.repairs:
            cache.clear_alarm("cache")
        print_json({"cache": str(cache.path), "integrityCheck": "ok", "writable": True,
                    "schemaVersion": cache.conn.execute("PRAGMA user_version").fetchone()[0],
                    "repairs": cache.repairs, "outbox": cache.outbox_count(), "alarms": cache.alarms()})
    return 0


def cmd_outbox_unpark(args: argparse.Namespace) -> int:
    with open_cache(args) as cache:
        count = cache.unpark()
    print_json({"unparked": count})
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .runtime import run_from_config

    return run_from_config(load_config(args.config), log_level=args.log_level)


def place_from_args(args: argparse.Namespace, areas: list[StopArea]) -> tuple[StopArea | None, str | None]:
    """The stop area and zone as the device would find them: a stop area from the cache gives its
    zone; a position gives the nearest stop area within the radius, and its zone."""
    if (args.lat is None) != (args.long is None):
        raise UsageError("--lat and --long go together")
    if args.lat is not None and (problem := implausible(Fix(args.lat, args.long))):
        raise UsageError(f"--lat/--long: {problem}")
    stop = None
    if args.stop_area is not None:
        stop = next((a for a in areas if a.stop_area_id == args.stop_area), None)
        if stop is None:
            raise UsageError(f"stop area {args.stop_area!r} is not in the cache {args.db} ({len(areas)} stop areas; "
                             "load them with `cache import-stops stops.txt`)")
    elif args.lat is not None:
        hit = StopLocator(areas, args.stop_radius).nearest(args.lat, args.long)
        stop = hit[0] if hit else None
    zone = stop.zone_id if stop else None
    if args.zone is not None:
        if zone is not None and zone != args.zone:
            raise UsageError(f"--zone {args.zone} contradicts stop area {stop.stop_area_id} "  # type: ignore[union-attr]
                             f"(zone {zone} in the cache)")
        zone = args.zone
    if (stop is not None or zone is not None) and args.operator_pid is None:
        raise UsageError("--operator-pid is needed: the stop area and zone go into the event under "
                         "the pid of the operator they belong to")
    return stop, zone


def cmd_validate(args: argparse.Namespace) -> int:
    policy = Policy(passback_window_s=args.passback_window, max_speed_kmh=args.max_speed_kmh,
                    device_time_window_s=args.device_time_window)
    raw = scanned_bytes(read_input(args.file), hex_text=args.hex)
    with open_cache(args) as cache:
        stop, zone = place_from_args(args, cache.stop_areas())
        ctx = Context(time=args.at, validator=Validator(args.validator_id),
                      mode="inspection" if args.inspect else "validation",
                      geo=Geo(args.lat, args.long) if args.lat is not None else None, zone=zone,
                      stop_area=stop.stop_area_id if stop else None, mode_of_transport=args.mode,
                      operator_pid=args.operator_pid)
        engine = Engine(cache, policy)
        try:
            decision = engine.validate_sync(raw, ctx)
        finally:
            engine.close()
    print_json(decision.to_json())
    return 0


def cmd_outbox_list(args: argparse.Namespace) -> int:
    with open_cache(args, read_only=True) as cache:
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
    meta.add_argument("file", help="participant metadata JSON (BoB format)")
    meta.set_defaults(handler=cmd_import_metadata)
    kdk = cache_cmd.add_parser("add-kdk", help="add a device key-derivation key")
    kdk.add_argument("--kid", required=True, help="the KDK's id, as device headers name it")
    kdk.add_argument("--key-file", required=True, metavar="FILE|-", help="the KDK (base64url) in FILE, or - for stdin")
    kdk.add_argument("--key", action=SecretOnCommandLine, use="--key-file FILE|-")
    kdk.set_defaults(handler=cmd_add_kdk)
    deny = cache_cmd.add_parser("deny", help="add a local deny-list entry (an expiry in the past lifts one)")
    which = deny.add_mutually_exclusive_group(required=True)
    which.add_argument("--ticket-id", help="deny this ticket")
    which.add_argument("--traveller-id", help="deny every ticket of this traveller")
    which.add_argument("--token-id", help="deny this token (a phone's device id, a card's key id)")
    deny.add_argument("--expire", required=True, type=iso,
                      help="until when (ISO 8601 with zone); a time in the past lifts an entry")
    deny.set_defaults(handler=cmd_deny)
    stops = cache_cmd.add_parser("import-stops", help="load stop areas and zones from a GTFS stops.txt")
    stops.add_argument("file", help="GTFS stops.txt with zone_id")
    stops.set_defaults(handler=cmd_import_stops)
    check = cache_cmd.add_parser("check", help="check the cache as the agent does at start; repair or move it aside")
    check.set_defaults(handler=cmd_cache_check)
    status = commands.add_parser("status", help="outbox, lists and their ages, alarms (reads only)")
    status.set_defaults(handler=cmd_status)
    for sub in (meta, kdk, deny, stops, check, status):
        add_db(sub)

    validate = commands.add_parser("validate", help="validate or inspect one scanned MTB, offline, as the device would")
    validate.add_argument("file", help="FILE (raw, zlib, base64url, zlib+base64url or hex) or -")
    validate.add_argument("--hex", action="store_true", default=None, help="the input is hex text")
    validate.add_argument("--at", required=True, type=iso, help="when the scan happens (ISO 8601 with zone)")
    validate.add_argument("--lat", type=float, help="where (WGS84): the nearest stop area in the cache gives the zone")
    validate.add_argument("--long", type=float, help="where (WGS84), with --lat")
    validate.add_argument("--stop-radius", type=float, default=DEFAULT_RADIUS_M, metavar="M",
                          help=f"how near a stop area a position counts as at it (default {DEFAULT_RADIUS_M:.0f})")
    validate.add_argument("--zone", help="the zone, when no stop area says it")
    validate.add_argument("--stop-area", help="a stop area in the cache (cache import-stops): gives the zone")
    validate.add_argument("--mode", help="mode of transport: bus, tram, train, metro, ferry")
    validate.add_argument("--validator-id", default="cli", help="the device id in the event (default cli)")
    validate.add_argument("--operator-pid", type=int, help="pid of the operator the stop areas and zones belong to")
    validate.add_argument("--inspect", action="store_true", help="inspection mode (no passback)")
    validate.add_argument("--passback-window", type=float, default=Policy.passback_window_s, metavar="S",
                          help=f"seconds (default {Policy.passback_window_s:.0f})")
    validate.add_argument("--max-speed-kmh", type=float, default=Policy.max_speed_kmh,
                          help=f"fraud above this speed between uses (default {Policy.max_speed_kmh:.0f})")
    validate.add_argument("--device-time-window", type=float, default=Policy.device_time_window_s, metavar="S",
                          help=f"device signature time vs clock, seconds (default {Policy.device_time_window_s:.0f})")
    add_db(validate)
    validate.set_defaults(handler=cmd_validate)

    outbox = commands.add_parser("outbox", help="events waiting for the server").add_subparsers(dest="sub", required=True)
    listing = outbox.add_parser("list", help="queued events; parked ones (refused by the server) are marked (reads only)")
    listing.add_argument("--json", action="store_true", help="the events as JSON")
    listing.add_argument("--limit", type=int, default=1000, help="at most this many of each kind (default 1000)")
    add_db(listing)
    listing.set_defaults(handler=cmd_outbox_list)
    unpark = outbox.add_parser("unpark", help="retry events the server refused (after fixing the cause)")
    add_db(unpark)
    unpark.set_defaults(handler=cmd_outbox_unpark)

    run = commands.add_parser("run", help="run the agent on a device")
    run.add_argument("--config", required=True, help="the device's TOML config")
    run.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    run.set_defaults(handler=cmd_run)
