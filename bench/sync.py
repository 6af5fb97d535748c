"""Sync benchmark (issue 5): drain an outbox of 1,000,000 events into the bundled server, and pull a
deny-list of 1,000,000 entries into an empty cache, both over loopback with the agent's own Syncer.

    .venv/bin/python bench/sync.py                          # 1M events, 1M deny entries
    .venv/bin/python bench/sync.py --events 50000 --deny 50000
    .venv/bin/python bench/sync.py --profile                # cProfile of the agent side, top 25

The server runs as its own process (``python -m server``) with the rate limit raised in its
config.json. The outbox is filled directly (executemany) with ticketEvent bodies made by
``agent.engine.ticket_event`` from a real minted MTB; the server's ``deny_list`` table is filled
directly through sqlite3 before the server starts. The device cache uses durability "full",
as a device does. Goals: drain < 5 min, pull < 60 s. Exits 1 when a goal is missed or a count
is wrong.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mtb  # noqa: E402
from mtb import keys, signer  # noqa: E402
from agent.cache import Cache  # noqa: E402
from mtb.policy import Policy  # noqa: E402
from mtb.scan_context import Context, Geo, Service, Validator  # noqa: E402
from agent.engine import Engine, TicketOutcome, scan_event_fields, ticket_event  # noqa: E402
from agent.sync import ServerClient, Syncer  # noqa: E402
from mtb.timeutil import format_extended  # noqa: E402
from tests.e2e.conftest import ServerProcess  # noqa: E402
from tests.server.conftest import PASSWORD, make_data_dir  # noqa: E402

PID = 1234
DRAIN_GOAL_S, PULL_GOAL_S = 300.0, 60.0
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def fill_outbox(cache: Cache, count: int) -> float:
    """``count`` realistic validation events, as the engine would have recorded them."""
    key = keys.generate_es256_key()
    scanned = mtb.decode(signer.device_sign(
        signer.mint(key, pid=PID, kid=f"{PID}:bench", bind_device="phone-9f3a",
                    tickets=[signer.TicketSpec("T", NOW - timedelta(hours=1), NOW + timedelta(hours=1))]),
        did="phone-9f3a", kid="kdk-1", device_key=b"k" * 32, at=NOW))
    policy = Policy()
    started = time.perf_counter()
    created = format_extended(NOW)
    chunk = 50_000
    for start in range(0, count, chunk):
        rows = []
        for i in range(start, min(count, start + chunk)):
            ctx = Context(time=NOW - timedelta(seconds=count - i), validator=Validator("bench-bus", "vehicle", "door 1"),
                          geo=Geo(55.605 + i % 100 / 1e4, 13.0038, 12.0), zone="A", stop_area=f"SA{i % 400}",
                          mode_of_transport="bus",
                          service=Service("5", f"trip-{i % 900}", "b-12"), operator_pid=PID)
            code = 0 if i % 10 else 8
            outcome = TicketOutcome(None, f"TICKET-{i % 50_000:06d}", code, "valid" if code == 0 else
                                    "accepted on this device 12 s ago (passback window 600 s)")
            event = ticket_event(scan_event_fields(ctx, policy, scanned), outcome)
            rows.append((event["localEventId"], "validation", json.dumps(event, separators=(",", ":")), created))
        with cache.transaction():
            cache.conn.executemany("INSERT INTO outbox(local_event_id, event_type, body, created_at) VALUES (?,?,?,?)",
                                   rows)
    return time.perf_counter() - started


def fill_deny_list(server_db: Path, count: int) -> float:
    """``count`` deny entries (ticket, traveller and token ids in turn), straight into the table."""
    expire = format_extended(NOW + timedelta(days=30))
    created = format_extended(NOW)
    started = time.perf_counter()
    conn = sqlite3.connect(server_db)
    try:
        with conn:
            conn.executemany(
                "INSERT INTO deny_list(ticket_id, traveller_id, token_id, expire, reason, created_at) "
                "VALUES (?,?,?,?,?,?)",
                ((f"DENIED-T{i}" if i % 3 == 0 else None, f"DENIED-P{i}" if i % 3 == 1 else None,
                  f"DENIED-D{i}" if i % 3 == 2 else None, expire, "bench", created) for i in range(count)))
    finally:
        conn.close()
    return time.perf_counter() - started


class Timers(dict):
    """Seconds spent in some of the agent's calls (they run on the engine's worker thread, which
    cProfile does not see): the rest of a phase is HTTP, JSON and the server."""

    def wrap(self, obj: object, name: str) -> None:
        inner = getattr(obj, name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self[name] = self.get(name, 0.0) + time.perf_counter() - started

        setattr(obj, name, timed)

    def line(self, total: float) -> str:
        parts = [f"{name} {seconds:.1f} s" for name, seconds in self.items()]
        return f"agent cache calls: {', '.join(parts)}; the other {total - sum(self.values()):.1f} s is HTTP, JSON, server"


def profiled(enabled: bool, label: str, coroutine_fn) -> tuple[float, object]:
    profile = cProfile.Profile() if enabled else None
    started = time.perf_counter()
    if profile:
        profile.enable()
    result = asyncio.run(coroutine_fn())
    if profile:
        profile.disable()
    elapsed = time.perf_counter() - started
    if profile:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(25)
        print(f"--- cProfile: {label} (agent process only; the server is another process) ---")
        print(out.getvalue())
    return elapsed, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--deny", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1000, help="events per POST (server max 1000)")
    parser.add_argument("--durability", choices=["full", "normal"], default="full")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    failures = []

    with tempfile.TemporaryDirectory() as tmp:
        data = make_data_dir(Path(tmp) / "server", rate_limit={"requests": 1_000_000, "window_seconds": 60,
                                                               "block_seconds": 1, "roles": {}})
        server_db = data / "server.sqlite3"
        if args.deny:
            seconds = fill_deny_list(server_db, args.deny)
            print(f"server deny list filled   {args.deny:,} entries in {seconds:.1f} s")
        server = ServerProcess(data).start()
        base_url = server.origin + "/api/v1"
        try:
            if args.events:
                cache = Cache(Path(tmp) / "drain.db", durability=args.durability)
                seconds = fill_outbox(cache, args.events)
                size = sum(p.stat().st_size for p in Path(tmp).glob("drain.db*")) / 1e6
                print(f"outbox filled              {args.events:,} events in {seconds:.1f} s ({size:.0f} MB cache)")
                engine = Engine(cache)
                client = ServerClient(base_url, "val1", PASSWORD, timeout_s=60, allow_insecure_http=True,
                                      max_requests_per_minute=1_000_000)
                syncer = Syncer(engine, client, batch_size=args.batch_size)
                timers = Timers()
                for name in ("outbox", "acknowledge"):
                    timers.wrap(cache, name)

                async def drain() -> int:
                    try:
                        return await syncer.upload_pending()
                    finally:
                        await client.close()

                elapsed, sent = profiled(args.profile, "drain", drain)
                left = cache.outbox_count()
                stored = sqlite3.connect(f"file:{server_db}?mode=ro", uri=True).execute(
                    "SELECT count(*), count(DISTINCT local_event_id) FROM events").fetchone()
                engine.close()
                cache.close()
                ok = elapsed < DRAIN_GOAL_S and sent == args.events and left == 0 and stored == (args.events,) * 2
                print(f"drain                      {args.events:,} events in {elapsed:.1f} s "
                      f"({args.events / elapsed:,.0f} events/s, batch {args.batch_size}); goal < {DRAIN_GOAL_S:.0f} s"
                      f" {'OK' if ok else 'MISSED'}")
                print(f"                           acknowledged {sent:,}, outbox left {left}, server holds "
                      f"{stored[0]:,} events ({stored[1]:,} distinct localEventIds)")
                print(f"                           {timers.line(elapsed)}")
                if not ok:
                    failures.append("drain")
            if args.deny:
                cache = Cache(Path(tmp) / "pull.db", durability=args.durability)
                engine = Engine(cache)
                client = ServerClient(base_url, "val1", PASSWORD, timeout_s=60, allow_insecure_http=True,
                                      max_requests_per_minute=1_000_000)
                syncer = Syncer(engine, client)
                timers = Timers()
                for name in ("apply_deny_entries", "deny_high_water"):
                    timers.wrap(cache, name)

                async def pull() -> None:
                    try:
                        await syncer.refresh_feeds()  # metadata, KDKs, then the whole deny-list
                    finally:
                        await client.close()

                elapsed, _ = profiled(args.profile, "deny-list pull", pull)
                rows = cache.conn.execute("SELECT count(*) FROM deny_list").fetchone()[0]
                high = cache.deny_high_water()
                hit = cache.denied([("ticket", "DENIED-T0"), ("token", f"DENIED-D{args.deny - 1 - (args.deny - 1) % 3 + 2}")],
                                   NOW)
                engine.close()
                cache.close()
                ok = elapsed < PULL_GOAL_S and rows == args.deny and high == args.deny and hit is not None
                print(f"deny-list pull             {args.deny:,} entries in {elapsed:.1f} s "
                      f"({args.deny / elapsed:,.0f} entries/s, pages of {10_000:,}); goal < {PULL_GOAL_S:.0f} s"
                      f" {'OK' if ok else 'MISSED'}")
                print(f"                           cache holds {rows:,} entries, high water {high:,}")
                print(f"                           {timers.line(elapsed)}")
                if not ok:
                    failures.append("pull")
        finally:
            server.stop()
    print("RESULT", "FAIL " + ", ".join(failures) if failures else "OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
