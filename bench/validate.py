"""Validations per second of the full engine next to bare ES256 verifications, on one core.

Prints: bare ES256 verify/s, full-engine validations/s (decode, ES256, HMAC, all checks, the
durable outbox write), their ratio, and p50/p99 latency per scan, with a cache holding
1,000,000 deny-list entries and 100,000 usage rows (change with --deny / --history).

    .venv/bin/python bench/validate.py [--scans 3000] [--durability full|normal]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mtb  # noqa: E402
from mtb import keys, signer  # noqa: E402
from agent.cache import Cache  # noqa: E402
from agent.context import Context, Geo, Validator  # noqa: E402
from agent.engine import Engine  # noqa: E402

NOW = datetime(2026, 3, 2, 8, 30, tzinfo=timezone.utc)


def fill(cache: Cache, deny: int, history: int) -> None:
    expire = (NOW + timedelta(days=30)).isoformat()
    epoch = (NOW + timedelta(days=30)).timestamp()
    with cache.transaction():
        cache.conn.executemany(
            "INSERT INTO deny_list(kind, value, expire, expire_epoch, server_id) VALUES ('ticket', ?, ?, ?, ?)",
            ((f"DENIED-{i}", expire, epoch, i) for i in range(deny)))
        cache.conn.executemany(
            "INSERT INTO usage(ticket_id, time, epoch, event_type, result, device_id, lat, long) "
            "VALUES (?, ?, ?, 'validation', 0, 'bus-1', 59.3, 18.0)",
            ((f"OLD-{i}", NOW.isoformat(), NOW.timestamp() - 86400 - i) for i in range(history)))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=3000)
    parser.add_argument("--deny", type=int, default=1_000_000)
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--durability", choices=["full", "normal"], default="full")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core

    key = keys.generate_es256_key()
    kdk = os.urandom(32)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Cache(Path(tmp) / "bench.db", durability=args.durability)
        cache.import_metadata(keys.participant_metadata(1234, [keys.public_jwk(key, "1234:k1")]))
        cache.add_kdk("kdk-1", kdk)
        started = time.perf_counter()
        fill(cache, args.deny, args.history)
        print(f"cache: {args.deny:,} deny entries, {args.history:,} usage rows "
              f"(filled in {time.perf_counter() - started:.1f} s)")

        scans = []
        for i in range(args.scans):
            spec = signer.TicketSpec(f"T{i}", NOW - timedelta(hours=1), NOW + timedelta(hours=1), zones=["A"],
                                     modes=["bus"], traveller_id=f"trav-{i}")
            issued = signer.mint(key, pid=1234, kid="1234:k1", tickets=[spec], bind_device=f"phone-{i}", dsp=1234)
            signed = signer.device_sign(issued, did=f"phone-{i}", kid="kdk-1",
                                        device_key=keys.derive_device_key(kdk, f"phone-{i}"), at=NOW)
            scans.append(mtb.wrap_transport(signed, "zlib+base64url"))

        public = key.public_key()
        decoded = [mtb.decode(s).issuer for s in scans[:1000]]
        started = time.perf_counter()
        for layer in decoded:
            keys.es256_verify(public, mtb.signed_data(layer.header_bytes, layer.payload_bytes), layer.signature)
        bare = len(decoded) / (time.perf_counter() - started)

        engine = Engine(cache)
        ctx = Context(time=NOW, validator=Validator("bus-1"), zone="A", mode_of_transport="bus",
                      geo=Geo(59.33, 18.06), operator_pid=1234)
        latencies = []
        accepted = 0
        started = time.perf_counter()
        for scan in scans:
            t0 = time.perf_counter()
            accepted += engine.validate_sync(scan, ctx).event_result == 0
            latencies.append((time.perf_counter() - t0) * 1000)
        full = len(scans) / (time.perf_counter() - started)
        engine.close()
        cache.close()

    assert accepted == len(scans), f"only {accepted} of {len(scans)} scans accepted"
    print(f"bare ES256 verify:       {bare:8.0f} /s")
    print(f"full engine ({args.durability:>6}):   {full:8.0f} validations/s  (durable outbox write per scan)")
    print(f"ratio:                   {full / bare:8.2f}   (goal >= 0.4)")
    print(f"latency per scan:        p50 {statistics.median(latencies):.2f} ms  p99 {percentile(latencies, 0.99):.2f} ms"
          f"  (goal p99 < 5 ms)")


if __name__ == "__main__":
    main()
