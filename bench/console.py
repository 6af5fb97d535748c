"""The console's fleet pages and the deny list against a large fleet, and what the state history
costs a state report.

Seeds ``--devices`` devices (their state reports through ``Store.report_device``, so with their
history and when each last fetched the deny list: most keep up, one in 20 is up to a day behind),
``--entries`` deny-list entries over a day up to 20 minutes ago, and ``--events`` events of one
device; then times, signed in as an admin over real HTTP on 127.0.0.1, each page ``--rounds``
times: the fleet (all, the alarmed ones, the last page), a device's page and the deny list
(which counts, for each entry shown, the devices that still have to fetch it). Printed: state
reports/s stored (with their history, one transaction each) and p50/max per page.

    .venv/bin/python bench/console.py [--devices 10000] [--entries 100000] [--database postgresql://...]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.app import app_from_data_dir  # noqa: E402
from server.config import load_config  # noqa: E402
from server.store import DenyEntry, DeviceReport, open_store  # noqa: E402
from server.thread import ServerThread  # noqa: E402
from tests.server.conftest import make_data_dir  # noqa: E402
from tests.server.console_client import ConsoleClient, client_session  # noqa: E402


def state(rng: random.Random, alarmed: bool) -> str:
    return json.dumps({"softwareVersion": rng.choice(["1.4.0", "1.4.1", "1.5.0"]),
                       "outbox": {"depth": rng.randrange(0, 50), "oldestEventAgeSeconds": 12.0, "parked": 0},
                       # most devices keep up with the deny list (long-poll); one in 20 is up to a day behind
                       "listAgesSeconds": {"denyList": rng.uniform(0, 60) if rng.random() < 0.95 else
                                           rng.uniform(0, 86400), "uses": rng.uniform(0, 60),
                                           "participantMetadata": rng.uniform(0, 86400)},
                       "alarms": [{"kind": "clock-skew"}] if alarmed else [], "clockSkewSeconds": rng.uniform(-2, 2),
                       "cache": {"ok": True}})


def seed(data: Path, args: argparse.Namespace) -> float:
    """Seed the database; returns state reports stored per second."""
    rng = random.Random(7)
    store = open_store(load_config(data).database_target(), pool_size=1)
    now = datetime.now(timezone.utc)
    try:
        for start in range(0, args.entries, 1000):
            with store.db.transaction() as tx:
                for i in range(start, min(args.entries, start + 1000)):
                    ago = timedelta(minutes=20) + timedelta(seconds=86400 * (args.entries - i) / args.entries)
                    store.add_deny_in(tx, DenyEntry(now + timedelta(days=30), ticket_id=f"T-{i:07d}", reason="revoke",
                                                    created_at=now - ago))
        store.bulk_load_events(("dev-00000", f"L{i}", f"T-{i:07d}", "validation",
                                (now - timedelta(seconds=i)).isoformat().replace("+00:00", "Z"), 0, 1234,
                                now.isoformat().replace("+00:00", "Z"), json.dumps({"ticketId": f"T-{i:07d}"}))
                               for i in range(args.events))
        started = time.perf_counter()
        for round_ in range(args.reports_per_device):
            for i in range(args.devices):
                at = now - timedelta(minutes=5 * (args.reports_per_device - round_))
                store.report_device(DeviceReport(f"dev-{i:05d}", at, "1.4.0", 0, int(i % 50 == 0),
                                                 state(rng, i % 50 == 0)))
        return args.devices * args.reports_per_device / (time.perf_counter() - started)
    finally:
        store.close()


async def time_pages(origin: str, rounds: int, last_page: int) -> dict[str, list[float]]:
    pages = {"fleet": "/console/fleet", "fleet, alarmed": "/console/fleet?show=alarm",
             "fleet, last page": f"/console/fleet?sort=device&page={last_page}",
             "a device": "/console/devices/dev-00000", "deny list": "/console/deny-list"}
    found: dict[str, list[float]] = {name: [] for name in pages}
    async with client_session() as session:
        client = ConsoleClient(origin, session)
        assert (await client.sign_in("admin")).status == 303
        for _ in range(rounds):
            for name, path in pages.items():
                started = time.perf_counter()
                page = await client.get(path)
                found[name].append(time.perf_counter() - started)
                assert page.status == 200, (path, page)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--reports-per-device", type=int, default=3)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--database", help="a postgresql:// URL of an empty database (default: SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data_dir(Path(tmp) / "data", **({"database": args.database} if args.database else {}))
        rate = seed(data, args)
        server = ServerThread(app_from_data_dir(data)).start()
        try:
            pages = asyncio.run(time_pages(server.origin, args.rounds, -(-args.devices // 50)))
        finally:
            server.stop()
    backend = "PostgreSQL" if args.database else "SQLite"
    print(f"{backend}: {args.devices} devices, {args.entries} deny-list entries, {args.events} events of one device")
    print(f"state reports stored (with their history): {rate:,.0f}/s")
    for name, times in pages.items():
        print(f"  {name:18} p50 {statistics.median(times) * 1000:7.1f} ms   max {max(times) * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
