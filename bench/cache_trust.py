"""What a cache that tells the truth costs: the start check, `cache check`, and per scan.

Prints, for a cache holding 1,000,000 deny-list entries and 100,000 usage rows (change with
--deny / --history): the time to open it as the agent does at start (lock, schema version,
PRAGMA quick_check, a test write, the clock floor), the time of `cache check`'s thorough
PRAGMA integrity_check, and per scan the ticketEvent shape check and the clock-floor check.

    .venv/bin/python bench/cache_trust.py [--deny N] [--history N]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.cache import Cache, conformed  # noqa: E402
from agent.clock import ClockFloor  # noqa: E402

NOW = datetime(2026, 3, 2, 8, 30, tzinfo=timezone.utc)
EVENT = {"ticketId": "T1", "localEventId": "3f2c5a9e-1111-2222-3333-444455556666", "time": "2026-03-02T08:30:00.000Z",
         "eventType": "validation", "eventResult": 0, "eventReason": "1 ticket(s) valid",
         "operatingDayDate": "2026-03-02", "validator": {"validatorId": "bus-17", "location": "vehicle"},
         "mtbReference": {"pid": 1234, "issuerSignature": "a" * 86}, "geo": {"lat": 59.3, "long": 18.0},
         "stopArea": {"pid": 1234, "stopAreaId": "CEN"}, "zone": {"pid": 1234, "zoneId": "A"},
         "service": {"pid": 1234, "serviceId": "17", "tripId": "17-0815"}, "modeOfTransport": "bus"}


def fill(path: Path, deny: int, history: int) -> None:
    with Cache(path, durability="normal") as cache, cache.transaction():
        epoch = (NOW + timedelta(days=30)).timestamp()
        cache.conn.executemany(
            "INSERT INTO deny_list(kind, value, expire, expire_epoch, server_id) VALUES ('ticket', ?, ?, ?, ?)",
            ((f"DENIED-{i}", NOW.isoformat(), epoch, i) for i in range(deny)))
        cache.conn.executemany(
            "INSERT INTO usage(ticket_id, time, epoch, event_type, result, device_id) "
            "VALUES (?, ?, ?, 'validation', 0, 'bus-1')",
            ((f"OLD-{i}", NOW.isoformat(), NOW.timestamp() - i) for i in range(history)))


def timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deny", type=int, default=1_000_000)
    parser.add_argument("--history", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cache.db"
        fill(path, args.deny, args.history)
        size = path.stat().st_size / 1e6
        start = timed(lambda: Cache(path, repair=True).close(), 5)
        thorough = timed(lambda: Cache(path, repair=True, thorough=True).close(), 2)
    print(f"cache: {args.deny:,} deny entries, {args.history:,} usage rows, {size:.0f} MB")
    print(f"open as the agent starts (lock, schema, quick_check, test write, floor): "
          f"median {statistics.median(start) * 1000:.0f} ms")
    print(f"cache check (integrity_check): median {statistics.median(thorough) * 1000:.0f} ms")
    n = 20000
    shape = timed(lambda: conformed(dict(EVENT)), n)
    floor = ClockFloor(60.0, server_time=NOW, newest_event=NOW)
    below = timed(lambda: floor.below(NOW), n)
    print(f"per scan: ticketEvent shape check + JSON {statistics.median(shape) * 1e6:.1f} us per event; "
          f"clock-floor check {statistics.median(below) * 1e6:.2f} us")


if __name__ == "__main__":
    main()
