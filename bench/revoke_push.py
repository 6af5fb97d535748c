"""Revocation pushed to running agents (issue 14.3): ``PUT /ticket/{id}/revoke`` -> the agent's
next scan of that ticket is refused, with 100 devices connected.

The server runs as its own process (``python -m server serve``, SQLite unless ``--database``)
on 127.0.0.1. ``--agents`` real agents (``agent.runtime``, each with its own SQLite cache,
engine thread and sync, in their default configuration: feeds every 60 s, the deny list and
the uses feed held open 50 s) and ``--devices`` minus that many lightweight device clients
(``bench/fleet.py``'s: an upload every ``--scan-interval`` s, a deny-list long-poll, the uses
feed, state reports) all stay connected. Then an operator revokes ``--revokes`` tickets, one
every ``--revoke-gap`` seconds. For each revoke and each agent the bench notes when the agent's
cache first holds the entry in force (so that its next scan is refused), then scans the ticket
through the agent's reader and checks the result is 7.

Printed: revoke -> refusal p50/p95/max over every (revoke, agent) pair, the same for the
lightweight clients' long-polls, each agent's requests in its busiest minute (its budget is
60), server CPU seconds.

    .venv/bin/python bench/revoke_push.py [--devices 100] [--agents 10] [--revokes 20]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402

import fleet  # noqa: E402 - bench/fleet.py: the deployment and the lightweight device clients
from agent.config import AgentConfig  # noqa: E402
from agent.runtime import Agent, build_agent, close_agent  # noqa: E402
from hardware import SimulatedFeedback, SimulatedReader  # noqa: E402

DEVICE_PASSWORD = "bench-device-password"  # bench/fleet.py's, for every dev-N credential


def agent_config(work: Path, base: str, n: int) -> AgentConfig:
    credentials = work / f"agent-{n}.credentials"
    credentials.write_text(f"dev-{n}:{DEVICE_PASSWORD}\n")
    credentials.chmod(0o600)
    return AgentConfig.model_validate({
        "device_id": f"gate-{n}", "db": str(work / f"agent-{n}.db"), "operator_pid": fleet.PID,
        "durability": "normal", "reader": {"kind": "simulated"}, "feedback": {"kind": "simulated"},
        "server": {"production_url": base, "credentials_file": str(credentials), "allow_insecure_http": True}})


async def issue(session: aiohttp.ClientSession, base: str, token: str, count: int) -> list[tuple[str, str]]:
    headers = {"X-BoB-AuthToken": token}
    tickets = []
    for i in range(count):
        async with session.post(base + "/manifest", headers=headers, json=fleet.PRODUCT) as reply:
            template = (await reply.json())["manifest"]
        async with session.post(base + "/ticket", headers=headers, json={
                "manifestMtbTemplate": template, "ticketHolder": {"travellerId": f"t{i}"}, "issueMtb": True}) as reply:
            body = await reply.json()
        tickets.append((body["ticketIds"][0], body["ticketBundle"]["mtb"]))
    return tickets


async def refused_after(agent: Agent, ticket_id: str, barcode: str, revoked_at: float, deadline: float) -> float:
    """Seconds from the revoke until the agent's cache holds the entry, checked by a real scan."""
    cache = agent.engine.cache
    while not await agent.engine.run(lambda: cache.denied([("ticket", ticket_id)], agent.context().time)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{agent.validator.validator_id} never heard of the revoke of {ticket_id}")
        await asyncio.sleep(0.01)
    took = time.monotonic() - revoked_at
    decision = await agent.handle_scan(barcode.encode())
    if decision is None or decision.event_result != 7:
        raise RuntimeError(f"{agent.validator.validator_id} scanned revoked {ticket_id}: {decision}")
    return took


async def run(args: argparse.Namespace, d: fleet.Deployment, base: str, work: Path) -> dict[str, Any]:
    figures = fleet.Figures()
    agents = [build_agent(agent_config(work, base, n), reader=SimulatedReader(), feedback=SimulatedFeedback())
              for n in range(args.agents)]
    busiest = [0] * len(agents)
    timeout = aiohttp.ClientTimeout(total=fleet.LONG_POLL + 30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        tickets = await issue(session, base, d.token("shop", "pos"), args.revokes)
        for agent in agents:
            await agent.syncer.sync_once()  # type: ignore[union-attr]
        running = [asyncio.create_task(agent.run(install_signal_handlers=False)) for agent in agents]
        deadline = time.monotonic() + args.revokes * args.revoke_gap + 60
        light = [asyncio.create_task(fleet.device(session, base, d.token(f"dev-{n}", "val"), n, args, figures,
                                                  deadline))
                 for n in range(args.agents, args.devices)]

        async def watch_budgets() -> None:
            while True:
                for i, agent in enumerate(agents):
                    busiest[i] = max(busiest[i], agent.syncer.client.budget.used())  # type: ignore[union-attr]
                await asyncio.sleep(1)

        watching = asyncio.create_task(watch_budgets())
        await asyncio.sleep(args.warm_up)  # every device has its long-poll open
        latencies: list[float] = []
        headers = {"X-BoB-AuthToken": d.token("shop", "pos")}
        for ticket_id, barcode in tickets:
            revoked_at = figures.revoked_at[ticket_id] = time.monotonic()
            async with session.put(f"{base}/ticket/{ticket_id}/revoke", headers=headers) as reply:
                assert reply.status == 200, await reply.text()
            latencies += await asyncio.gather(*(refused_after(agent, ticket_id, barcode, revoked_at, revoked_at + 60)
                                                for agent in agents))
            await asyncio.sleep(args.revoke_gap)
        for agent in agents:
            agent.stop.set()
        await asyncio.gather(*running)
        watching.cancel()
        for task in light:
            task.cancel()
        await asyncio.gather(*light, watching, return_exceptions=True)
    for agent in agents:
        await close_agent(agent)
    light_latencies = [t for per in figures.delivered.values() for t in per]
    return {"agents": latencies, "light": light_latencies, "busiest": busiest, "errors": figures.errors}


def main() -> int:
    top = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--devices", type=int, default=100, help="connected devices in all, the agents among them")
    top.add_argument("--agents", type=int, default=10)
    top.add_argument("--revokes", type=int, default=20)
    top.add_argument("--revoke-gap", type=float, default=2.0)
    top.add_argument("--warm-up", type=float, default=5.0)
    top.add_argument("--scan-interval", type=float, default=2.0, help="lightweight clients: an upload this often")
    top.add_argument("--uses-interval", type=float, default=10.0)
    top.add_argument("--state-interval", type=float, default=60.0)
    top.add_argument("--workers", type=int, default=1)
    args = top.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mtb-revoke-"))
    d = fleet.Deployment(work / "server", None, args.devices)
    base = d.start(args.workers)
    try:
        pids = d.server_pids()
        cpu0 = {pid: fleet.cpu_seconds(pid) for pid in pids}
        started = time.monotonic()
        result = asyncio.run(run(args, d, base, work))
        elapsed = time.monotonic() - started
        cpu = [round(fleet.cpu_seconds(pid) - cpu0[pid], 1) for pid in pids]
    finally:
        d.stop()
        shutil.rmtree(work, ignore_errors=True)
    agents, light = result["agents"], result["light"]
    print(f"revoke -> refused, {args.devices} devices connected ({args.agents} real agents with the default "
          f"config: feeds every 60 s, deny list held 50 s; {args.devices - args.agents} lightweight clients), "
          f"{args.revokes} revokes {args.revoke_gap} s apart, SQLite, {args.workers} server process(es), "
          f"{os.cpu_count()} cores shared by server, agents and clients")
    print(f"  agents: next scan refused after  p50 {fleet.pct(agents, 50):.3f} s  p95 {fleet.pct(agents, 95):.3f} s  "
          f"max {max(agents):.3f} s  mean {statistics.mean(agents):.3f} s  (n={len(agents)})")
    if light:
        print(f"  lightweight clients: entry delivered after  p50 {fleet.pct(light, 50):.3f} s  "
              f"p95 {fleet.pct(light, 95):.3f} s  max {max(light):.3f} s  (n={len(light)})")
    print(f"  agents' requests in their busiest minute: max {max(result['busiest'])} "
          f"(budget 60; server limit for devices 120)")
    print(f"  server CPU s {cpu} over {elapsed:.0f} s; client errors {result['errors'] or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
