"""Validations per second on one core: bare ES256, the engine, and the running agent.

Prints: bare ES256 verify/s (the floor: one signature check per scan), the engine's
validations/s (``validate_sync``: transport, decode, ES256, HMAC, every check, the durable
outbox write), the running agent's scans/s (reader -> context -> engine thread -> decision ->
feedback, through ``agent.runtime.Agent`` with a simulated reader and feedback), their ratios,
and the latency per scan, with a cache holding 1,000,000 deny-list entries and 100,000 usage
rows (change with --deny / --history).

The three are measured in interleaved rounds and each figure is its best round, so a burst of
load from another process on the machine hurts all three alike. Each is given by wall-clock
time and by the process's CPU time: on a machine shared with other work the wall-clock ratios
swing from run to run, the CPU ones hardly; with full durability only the wall clock counts the
fsyncs.

    .venv/bin/python bench/validate.py [--scans 3000] [--rounds 10] [--durability full|normal]
"""
from __future__ import annotations

import argparse
import asyncio
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
from agent.clock import ClockWatch  # noqa: E402
from mtb.scan_context import Context, Geo, Validator  # noqa: E402
from agent.engine import Engine  # noqa: E402
from agent.runtime import Agent  # noqa: E402
from hardware import SimulatedFeedback, SimulatedReader  # noqa: E402

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


def mint_scans(key, kdk: bytes, count: int, prefix: str) -> list[bytes | str]:
    """Device-bound, device-signed tickets in the barcode's zlib+base64url form, each one new."""
    scans = []
    for i in range(count):
        spec = signer.TicketSpec(f"{prefix}{i}", NOW - timedelta(hours=1), NOW + timedelta(hours=1), zones=["A"],
                                 modes=["bus"], traveller_id=f"trav-{prefix}{i}")
        issued = signer.mint(key, pid=1234, kid="1234:k1", tickets=[spec], bind_device=f"phone-{i}", dsp=1234)
        signed = signer.device_sign(issued, did=f"phone-{i}", kid="kdk-1",
                                    device_key=keys.derive_device_key(kdk, f"phone-{i}"), at=NOW)
        scans.append(mtb.wrap_transport(signed, "zlib+base64url"))
    return scans


Rates = tuple[float, float]  # per second of wall-clock time, and per second of the process's CPU time


def bare_rate(public, layers) -> Rates:
    started, cpu = time.perf_counter(), time.process_time()
    for layer in layers:
        keys.es256_verify(public, mtb.signed_data(layer.header_bytes, layer.payload_bytes), layer.signature)
    return len(layers) / (time.perf_counter() - started), len(layers) / (time.process_time() - cpu)


def engine_rate(engine: Engine, ctx: Context, scans, latencies: list[float]) -> Rates:
    accepted = 0
    started, cpu = time.perf_counter(), time.process_time()
    for scan in scans:
        t0 = time.perf_counter()
        accepted += engine.validate_sync(scan, ctx).event_result == 0
        latencies.append((time.perf_counter() - t0) * 1000)
    rates = len(scans) / (time.perf_counter() - started), len(scans) / (time.process_time() - cpu)
    assert accepted == len(scans), f"engine: only {accepted} of {len(scans)} scans accepted"
    return rates


class TimedFeedback(SimulatedFeedback):
    """Notes when each decision reached the passenger."""

    def __init__(self) -> None:
        super().__init__()
        self.at: list[float] = []

    async def show(self, colour: str, text: str, lines: list[str] | None = None) -> None:
        self.at.append(time.perf_counter())
        await super().show(colour, text, lines)


def agent_rate(engine: Engine, scans) -> Rates:
    """Scans/s of a real Agent: from the moment every scan is waiting at the reader to the last
    decision shown, once the agent has started (its first hourly maintenance done). Its clock
    stands at NOW, so that maintenance keeps the bench's deny entries and history; each scan's
    context is the one the engine is measured with."""

    async def measure() -> Rates:
        feedback, reader = TimedFeedback(), SimulatedReader()
        agent = Agent(engine=engine, reader=reader, feedback=feedback, validator=Validator("bus-1"),
                      mode_of_transport="bus", clock=ClockWatch(wall=lambda: NOW))
        agent.context = lambda: Context(time=NOW, validator=agent.validator, zone="A",  # type: ignore[method-assign]
                                        mode_of_transport="bus", geo=Geo(59.33, 18.06), operator_pid=1234)
        running = asyncio.create_task(agent.run(install_signal_handlers=False))
        await asyncio.sleep(0.05)  # the agent starts and queues its maintenance on the engine ...
        await engine.run(lambda: None)  # ... which is done once this answers
        started, cpu = time.perf_counter(), time.process_time()
        for scan in scans:
            await reader.push(scan)
        await reader.close()
        await running
        cpu = time.process_time() - cpu  # both threads: the event loop's and the engine's
        greens = sum(s.colour == "green" for s in feedback.shown)
        assert greens == len(scans), f"agent: only {greens} of {len(scans)} scans green"
        return len(scans) / (feedback.at[-1] - started), len(scans) / cpu

    return asyncio.run(measure())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=3000, help="scans per measure, split over the rounds")
    parser.add_argument("--rounds", type=int, default=10)
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

        per_round = max(2, args.scans // args.rounds)
        engine_scans = mint_scans(key, kdk, per_round * args.rounds, "E")
        agent_scans = mint_scans(key, kdk, per_round * args.rounds, "A")
        layers = [mtb.decode(s).issuer for s in engine_scans[:per_round]]
        public = key.public_key()

        engine = Engine(cache)
        ctx = Context(time=NOW, validator=Validator("bus-1"), zone="A", mode_of_transport="bus",
                      geo=Geo(59.33, 18.06), operator_pid=1234)
        bare, full, running = [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]
        latencies: list[float] = []
        for r in range(args.rounds):
            chunk = slice(r * per_round, (r + 1) * per_round)
            for best, rates in ((bare, bare_rate(public, layers)),
                                (full, engine_rate(engine, ctx, engine_scans[chunk], latencies)),
                                (running, agent_rate(engine, agent_scans[chunk]))):
                best[:] = [max(b, x) for b, x in zip(best, rates)]
        engine.close()
        cache.close()

    goal = 0.4 if args.durability == "normal" else 0.17
    print("                          by wall clock        by CPU time (the machine's other load left out)")
    print(f"bare ES256 verify:       {bare[0]:8.0f} /s          {bare[1]:8.0f} /s")
    print(f"engine ({args.durability:>6}):         {full[0]:8.0f} /s          {full[1]:8.0f} /s"
          "   (validate_sync: durable outbox write per scan)")
    print(f"running agent:           {running[0]:8.0f} /s          {running[1]:8.0f} /s"
          "   (reader -> engine thread -> feedback)")
    print(f"engine / ES256:          {full[0] / bare[0]:8.2f}            {full[1] / bare[1]:8.2f}      (goal >= {goal})")
    print(f"agent / engine:          {running[0] / full[0]:8.2f}            {running[1] / full[1]:8.2f}      (goal >= 0.8)")
    print(f"latency per scan:        p50 {statistics.median(latencies):.2f} ms  p99 {percentile(latencies, 0.99):.2f} ms"
          f"  max {max(latencies):.1f} ms  (goal p99 < 5 ms)")


if __name__ == "__main__":
    main()
