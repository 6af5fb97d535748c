"""A fleet on loopback: lightweight async device clients against the server, on SQLite with one
process and on PostgreSQL with 1 and 4 processes (``serve --workers N``).

Each device has its own credential and token (minted with the deployment's key, as GET /auth
would) and, for ``--seconds``: uploads one validation per scan (a scan every ``--scan-interval``
seconds, jittered), keeps a deny-list long-poll open (``wait=25``), reads the uses feed every
``--uses-interval`` seconds and reports its state every ``--state-interval`` seconds. Meanwhile
an operator revokes ``--revokes`` tickets; each device notes when its long-poll delivered each.

Then two saturation phases on the same server: ``--ingest-clients`` clients posting batches of
50 as fast as they can (events/s ingested), and 50 clients paging the deny list (10,000 entries
preloaded; entries/s).

Printed per configuration: devices held, events/s stored, upload and feed latency p50/p99,
revoke-to-every-device p50/p95/max, CPU seconds per server process and for PostgreSQL, then the
saturation figures. The clients run in this one process (2 cores are shared with the server and
PostgreSQL: the figures say where this machine stops, not the server alone).

    .venv/bin/python bench/fleet.py [--devices 1000] [--seconds 20] [--configs sqlite:1,postgresql:1,postgresql:4]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import psycopg  # noqa: E402

from mtb import keys  # noqa: E402
from mtb.timeutil import format_extended  # noqa: E402
from server import auth, cli, jws  # noqa: E402
from server.config import load_config  # noqa: E402
from server.store import open_store  # noqa: E402
from server.store.core import ts  # noqa: E402
from tests import pgcluster  # noqa: E402

PID = 1234
HOST = "127.0.0.1"  # loopback only
LONG_POLL = 25
PRODUCT = {"productSelections": [{"productId": "single-AB-adult"}]}  # from the sample catalogue, copied in


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def postgres_pids() -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    out.append(int(entry.name))
            except OSError:
                pass
    return out


class Deployment:
    def __init__(self, base: Path, database: str | None, devices: int):
        self.data = base / "data"
        extra = {"database": database} if database else {}
        cli.init_data_dir(self.data, pid=PID, admin_password="bench-admin-password", **extra,
                          rate_limit={"requests": 1_000_000, "window_seconds": 60, "block_seconds": 1, "roles": {}})
        shutil.copyfile(ROOT / "agent" / "sample" / "products.json", self.data / "products.json")
        self.key = keys.load_private_key((self.data / "authtoken-key.pem").read_bytes())
        store = open_store(load_config(self.data).database_target(), pool_size=1)
        hashed = auth.hash_password("bench-device-password")
        now = datetime.now(timezone.utc)
        try:
            with store.db.transaction() as tx:
                tx.executemany("INSERT INTO credentials(entity_id, role, pid, password_hash, created_at) "
                               "VALUES (?, ?, ?, ?, ?)",
                               [(f"dev-{i}", "val", PID, hashed, ts(now)) for i in range(devices)]
                               + [("shop", "pos", PID, hashed, ts(now))])
        finally:
            store.close()
        self.proc: subprocess.Popen[bytes] | None = None

    def token(self, sub: str, role: str) -> str:
        now = int(time.time())
        return jws.sign(self.key, {"typ": "JWT", "kid": f"{PID}:auth-1"},
                        {"iss": str(PID), "sub": sub, "iat": now, "exp": now + 3600, "bobAuthZ": role})

    def start(self, workers: int) -> str:
        port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "server", "serve", "--data", str(self.data), "--host", HOST,
                                      "--port", str(port), "--workers", str(workers)], cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://{HOST}:{port}/api/v1"
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/health", timeout=1).close()
                time.sleep(0.5 if workers > 1 else 0)  # let every worker bind
                return base
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def server_pids(self) -> list[int]:
        assert self.proc is not None
        return children(self.proc.pid) or [self.proc.pid]

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)


@dataclass
class Figures:
    upload: list[float] = field(default_factory=list)
    uses: list[float] = field(default_factory=list)
    state: list[float] = field(default_factory=list)
    events: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    revoked_at: dict[str, float] = field(default_factory=dict)
    delivered: dict[str, list[float]] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


def validation(ticket: str, lid: str) -> dict[str, Any]:
    return {"ticketId": ticket, "localEventId": lid, "time": format_extended(datetime.now(timezone.utc)),
            "eventType": "validation", "eventResult": 0, "stopArea": {"pid": PID, "stopAreaId": "SA1"},
            "zone": {"pid": PID, "zoneId": "A"}, "geo": {"lat": 55.6, "long": 13.0}}


async def device(session: aiohttp.ClientSession, base: str, token: str, n: int, args: argparse.Namespace,
                 figures: Figures, deadline: float) -> None:
    headers = {"X-BoB-AuthToken": token}
    rng = random.Random(n)

    async def timed(method: str, path: str, into: list[float], **kw: Any) -> Any:
        started = time.perf_counter()
        async with session.request(method, base + path, headers=headers, **kw) as reply:
            body = await reply.read()
            if reply.status >= 300:
                figures.error(f"{method} {path.split('?')[0]} {reply.status}")
                return None
        into.append(time.perf_counter() - started)
        return body

    async def scans() -> None:
        await asyncio.sleep(rng.uniform(0, args.scan_interval))
        i = 0
        while time.monotonic() < deadline:
            i += 1
            if await timed("POST", "/validation", figures.upload,
                           json=[validation(f"T-{n % 997}", f"d{n}-{i}")]) is not None:
                figures.events += 1
            await asyncio.sleep(args.scan_interval * rng.uniform(0.8, 1.2))

    async def deny() -> None:
        high = 0
        while time.monotonic() < deadline:
            try:
                async with session.get(base + "/blacklist", headers=headers,
                                       params={"blacklistEntryId": high, "wait": LONG_POLL, "limit": 10000}) as reply:
                    entries = await reply.json() if reply.status == 200 else []
            except (aiohttp.ClientError, asyncio.TimeoutError):
                figures.error("deny long-poll")
                await asyncio.sleep(1)
                continue
            arrived = time.monotonic()
            for entry in entries:
                high = max(high, entry["blacklistEntryId"])
                tid = entry.get("ticketId", "")
                if tid in figures.revoked_at:
                    figures.delivered.setdefault(tid, []).append(arrived - figures.revoked_at[tid])

    async def uses() -> None:
        await asyncio.sleep(rng.uniform(0, args.uses_interval))
        high = 0
        while time.monotonic() < deadline:
            body = await timed("GET", f"/uses?useId={high}&limit=1000", figures.uses)
            if body:
                page = json.loads(body)
                high = page[-1]["useId"] if page else high
            await asyncio.sleep(args.uses_interval)

    async def state() -> None:
        await asyncio.sleep(rng.uniform(0, args.state_interval))
        while time.monotonic() < deadline:
            await timed("POST", "/device/state", figures.state, json={
                "softwareVersion": "bench", "outbox": {"depth": 0}, "cache": {"ok": True}})
            await asyncio.sleep(args.state_interval)

    polling = asyncio.ensure_future(deny())
    try:
        await asyncio.gather(scans(), uses(), state(), return_exceptions=True)
    finally:  # the long-poll in flight ends with the run (or when the device is cancelled), not LONG_POLL s later
        polling.cancel()
        await asyncio.gather(polling, return_exceptions=True)


async def operator(session: aiohttp.ClientSession, base: str, d: Deployment, args: argparse.Namespace,
                   figures: Figures, start: float) -> None:
    headers = {"X-BoB-AuthToken": d.token("shop", "pos")}
    await asyncio.sleep(start)
    for i in range(args.revokes):
        async with session.post(base + "/manifest", headers=headers, json=PRODUCT) as reply:
            template = (await reply.json())["manifest"]
        async with session.post(base + "/ticket", headers=headers, json={
                "manifestMtbTemplate": template, "ticketHolder": {"travellerId": f"t{i}"}}) as reply:
            tid = (await reply.json())["ticketIds"][0]
        figures.revoked_at[tid] = time.monotonic()
        async with session.put(base + f"/ticket/{tid}/revoke", headers=headers) as reply:
            assert reply.status == 200
        await asyncio.sleep(args.revoke_gap)


async def fleet_phase(d: Deployment, base: str, args: argparse.Namespace) -> Figures:
    figures = Figures()
    tokens = [d.token(f"dev-{i}", "val") for i in range(args.devices)]
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=LONG_POLL + 30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        deadline = time.monotonic() + args.seconds
        await asyncio.gather(*(device(session, base, tokens[i], i, args, figures, deadline)
                               for i in range(args.devices)),
                             operator(session, base, d, args, figures, start=args.seconds / 4))
    return figures


async def ingest_phase(d: Deployment, base: str, clients: int, seconds: float) -> float:
    stored = 0
    deadline = time.monotonic() + seconds

    async def client(n: int, session: aiohttp.ClientSession) -> None:
        nonlocal stored
        headers = {"X-BoB-AuthToken": d.token(f"dev-{n}", "val")}
        i = 0
        while time.monotonic() < deadline:
            batch = [validation(f"T-{n}", f"i{n}-{i}-{k}") for k in range(50)]
            i += 1
            async with session.post(base + "/validation", headers=headers, json=batch) as reply:
                if reply.status == 201:
                    stored += len(batch)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        started = time.monotonic()
        await asyncio.gather(*(client(n, session) for n in range(clients)))
        return stored / (time.monotonic() - started)


async def deny_feed_phase(d: Deployment, base: str, clients: int, seconds: float) -> float:
    entries = 0
    deadline = time.monotonic() + seconds

    async def client(n: int, session: aiohttp.ClientSession) -> None:
        nonlocal entries
        headers = {"X-BoB-AuthToken": d.token(f"dev-{n}", "val")}
        while time.monotonic() < deadline:
            async with session.get(base + "/blacklist", headers=headers, params={"limit": 10000}) as reply:
                page = await reply.json()
                if reply.status != 200:
                    raise RuntimeError(f"deny-list read: {reply.status} {page}")
                entries += len(page)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        started = time.monotonic()
        await asyncio.gather(*(client(n, session) for n in range(clients)))
        return entries / (time.monotonic() - started)


def preload_deny(d: Deployment, count: int) -> None:
    store = open_store(load_config(d.data).database_target(), pool_size=1)
    expire = ts(datetime.now(timezone.utc) + timedelta(days=30))
    try:
        with store.db.transaction() as tx:
            tx.executemany("INSERT INTO deny_list(ticket_id, expire, reason, created_at) VALUES (?, ?, 'bench', ?)",
                           [(f"DENY-{i}", expire, expire) for i in range(count)])
    finally:
        store.close()


def run_config(kind: str, workers: int, args: argparse.Namespace, cluster: Any, base_dir: Path) -> dict[str, Any]:
    database = None
    if kind == "postgresql":
        name = f"fleet_{kind}_{workers}_{int(time.time())}"
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        database = cluster.url.rsplit("/", 1)[0] + "/" + name
    d = Deployment(base_dir / f"{kind}-{workers}", database, max(args.devices, args.ingest_clients, 50))
    base = d.start(workers)
    try:
        pids = d.server_pids()
        pg = postgres_pids() if kind == "postgresql" else []
        cpu0 = {pid: cpu_seconds(pid) for pid in pids + pg}
        client0 = cpu_seconds(os.getpid())
        started = time.monotonic()
        figures = asyncio.run(fleet_phase(d, base, args)) if "fleet" in args.phases else Figures()
        elapsed = time.monotonic() - started
        client_cpu = cpu_seconds(os.getpid()) - client0
        pg = postgres_pids() if kind == "postgresql" else []  # the pools' backends started meanwhile too
        cpu = {pid: cpu_seconds(pid) - cpu0.get(pid, 0.0) for pid in set(pids + pg)}
        ingest = asyncio.run(ingest_phase(d, base, args.ingest_clients, args.saturation_seconds))
        preload_deny(d, 10_000)
        feed = asyncio.run(deny_feed_phase(d, base, 50, args.saturation_seconds))
        if "fleet" not in args.phases:
            elapsed = 0.0
    finally:
        d.stop()
        shutil.rmtree(d.data, ignore_errors=True)
    latencies = [t for per in figures.delivered.values() for t in per]
    reached = min((len(per) for per in figures.delivered.values()), default=0)
    return {"config": f"{kind} x{workers}", "devices": args.devices, "elapsed": elapsed, "figures": figures,
            "events_per_s": figures.events / args.seconds, "revoke": latencies, "reached": reached,
            "server_cpu": [round(cpu[p], 1) for p in pids], "pg_cpu": round(sum(cpu[p] for p in pg), 1),
            "client_cpu": round(client_cpu, 1), "ingest": ingest, "feed": feed, "workers": workers}


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    f: Figures = result["figures"]
    ms = lambda v: f"{v * 1000:.0f}"  # noqa: E731
    print(f"\n== {result['config']}: {result['devices']} devices, a scan every {args.scan_interval} s each, "
          f"{args.seconds} s")
    print(f"  events stored/s      {result['events_per_s']:.0f}  (offered {args.devices / args.scan_interval:.0f})")
    print(f"  upload ms            p50 {ms(pct(f.upload, 50))}  p99 {ms(pct(f.upload, 99))}  (n={len(f.upload)})")
    print(f"  uses feed ms         p50 {ms(pct(f.uses, 50))}  p99 {ms(pct(f.uses, 99))}  (n={len(f.uses)})")
    print(f"  state report ms      p50 {ms(pct(f.state, 50))}  p99 {ms(pct(f.state, 99))}  (n={len(f.state)})")
    print(f"  revoke -> device s   p50 {pct(result['revoke'], 50):.2f}  p95 {pct(result['revoke'], 95):.2f}  "
          f"max {max(result['revoke'], default=float('nan')):.2f}  ({len(f.revoked_at)} revokes, every one reached "
          f"{result['reached']} of {result['devices']} devices)")
    print(f"  server CPU s/process {result['server_cpu']}  PostgreSQL CPU s {result['pg_cpu']}  "
          f"bench clients CPU s {result['client_cpu']}  (over {result['elapsed']:.0f} s)")
    print(f"  errors               {f.errors or 'none'}")
    print(f"  ingest, {args.ingest_clients} clients x 50/batch: {result['ingest']:.0f} events/s")
    print(f"  deny-list feed, 50 clients x 10,000/page: {result['feed']:.0f} entries/s "
          f"({result['feed'] / result['workers']:.0f} per process)")


def main() -> int:
    top = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--devices", type=int, default=1000)
    top.add_argument("--seconds", type=float, default=20)
    top.add_argument("--scan-interval", type=float, default=2.0)
    top.add_argument("--uses-interval", type=float, default=10.0)
    top.add_argument("--state-interval", type=float, default=30.0)
    top.add_argument("--revokes", type=int, default=5)
    top.add_argument("--revoke-gap", type=float, default=2.0)
    top.add_argument("--ingest-clients", type=int, default=20)
    top.add_argument("--saturation-seconds", type=float, default=8)
    top.add_argument("--configs", default="sqlite:1,postgresql:1,postgresql:4")
    top.add_argument("--phases", default="fleet,saturation", help="fleet,saturation or saturation alone")
    args = top.parse_args()
    configs = [(c.split(":")[0], int(c.split(":")[1])) for c in args.configs.split(",")]
    base_dir = Path(tempfile.mkdtemp(prefix="mtb-fleet-"))
    os.chmod(base_dir, 0o755)
    cluster = pgcluster.start_temporary(durable=True) if any(k == "postgresql" for k, _ in configs) else None
    try:
        for kind, workers in configs:
            report(run_config(kind, workers, args, cluster, base_dir), args)
    finally:
        if cluster is not None:
            cluster.stop()
            shutil.rmtree(cluster.directory.parent, ignore_errors=True)
        shutil.rmtree(base_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
