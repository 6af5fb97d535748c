"""Sync request rate (issue 10.1): a validator scanning at a given rate for a given span of
SIMULATED time against the bundled server with its default limits; prints the requests the
device made (the busiest minute, and in all), the events delivered and the 429s met.

    .venv/bin/python bench/sync_rate.py                      # 10 scans/s for 10 simulated minutes
    .venv/bin/python bench/sync_rate.py --rate 20 --minutes 5 --upload-interval 2

The device syncs with its real code (feeds, uploader, budget) on a simulated clock that the
server's rate limiter shares, so minutes run in seconds; scans go through the real engine (ES256,
SQLite). Exits 1 when a 429 came or an event was not delivered exactly once.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from agent.cache import Cache  # noqa: E402
from mtb.scan_context import Validator  # noqa: E402
from agent.engine import Engine  # noqa: E402
from agent.runtime import Agent  # noqa: E402
from agent.sync import ServerClient, Syncer  # noqa: E402
from hardware import SimulatedFeedback, SimulatedReader  # noqa: E402
from server.app import app_from_data_dir  # noqa: E402
from server.context import CTX  # noqa: E402
from server.thread import ServerThread  # noqa: E402
from tests.server.conftest import PASSWORD, Api, Deployment, make_data_dir  # noqa: E402
from tests.simclock import SimulatedClock  # noqa: E402


async def run(args: argparse.Namespace, tmp: Path) -> int:
    clock = SimulatedClock()
    data_dir = make_data_dir(tmp / "server")  # the default rate limits
    app = app_from_data_dir(data_dir)
    app[CTX].limiter.clock = clock.monotonic
    server = ServerThread(app).start()
    deployment = Deployment(data_dir, server)  # type: ignore[arg-type]
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(deployment, session)
            barcodes = []
            for i in range(4):
                reply = await api.issue(f"rider-{i}", issueMtb=True)
                barcodes.append(reply.body["ticketBundle"]["mtb"].encode())
        barcodes.append(os.urandom(40))
        cache = Cache(tmp / "device.db", durability="normal")
        engine = Engine(cache)
        client = ServerClient(deployment.base, "val1", PASSWORD, clock=clock, allow_insecure_http=True,
                              max_requests_per_minute=args.budget)
        syncer = Syncer(engine, client, upload_interval_s=args.upload_interval)
        agent = Agent(engine=engine, reader=SimulatedReader(), feedback=SimulatedFeedback(),
                      validator=Validator("bench-1"), syncer=syncer, metadata_max_age_s=7 * 86400)
        started = time.perf_counter()
        await syncer.sync_once()
        stop = asyncio.Event()
        loop = asyncio.create_task(syncer.run(stop))
        step = 1 / args.rate
        recorded: list[str] = []
        busiest = 0
        for n in range(int(args.minutes * 60 * args.rate)):
            decision = await agent.handle_scan(barcodes[n % len(barcodes)])
            recorded += [e["localEventId"] for e in decision.events] if decision else []
            await clock.advance(step)
            busiest = max(busiest, client.budget.used())
        await clock.advance(max(args.upload_interval, 1) * 2)
        stop.set()
        await loop
        wall = time.perf_counter() - started
        with sqlite3.connect(data_dir / "server.sqlite3") as conn:
            stored = dict(conn.execute("SELECT local_event_id, count(*) FROM events GROUP BY local_event_id"))
        delivered = Counter(stored.get(i, 0) for i in recorded)
        rate_limited = sum(1 for c in syncer.channels if c.status.last_error and "429" in c.status.last_error)
        errors = sum(c.status.errors for c in syncer.channels)
        print(f"{args.rate:g} scans/s for {args.minutes:g} simulated minutes ({len(recorded)} events), "
              f"upload interval {args.upload_interval:g} s, budget {args.budget}/min; ran in {wall:.1f} s")
        print(f"busiest minute: {busiest} requests (server limit for devices: 120); "
              f"uploads acknowledged {syncer.uploader.status.changes} events")
        print(f"delivered exactly once: {delivered[1]}, missing: {delivered[0]}, "
              f"duplicated: {sum(v for k, v in delivered.items() if k > 1)}; failed attempts: {errors}, "
              f"channels that met a 429: {rate_limited}")
        await client.close()
        engine.close()
        cache.close()
        ok = delivered[1] == len(recorded) and errors == 0
        print("RESULT", "OK" if ok else "FAILED")
        return 0 if ok else 1
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10.0, help="scans a second")
    parser.add_argument("--minutes", type=float, default=10.0, help="simulated minutes")
    parser.add_argument("--upload-interval", type=float, default=5.0, help="[server] upload_interval_s")
    parser.add_argument("--budget", type=int, default=60, help="[server] max_requests_per_minute")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mtb-sync-rate-") as tmp:
        return asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
