"""The B2B API with several processes on one database (``serve --workers N``, several hosts, the
operator's CLI beside the server): roll-overs racing each other and an HR sync, documents and
webhooks sent by two processes at once, the per-key limit shared by two servers. Real
processes (``python -m server b2b ...``), on both store backends; the invariants are checked in
the database afterwards."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp

from server.app import app_from_data_dir
from server.b2b import service
from server.b2b.calendar import Month
from server.b2b.cli import open_b2b, run_rollover
from server.thread import ServerThread

from .conftest import ROOT, Receiver, endpoint, row, start_world, today

LOUD = ("409", "Traceback", "ERROR")  # what a clean run never logs


def job(data: Path, *argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "server", "b2b", *argv, "--data", str(data)],
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


async def finished(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = await asyncio.to_thread(process.communicate, timeout=240)
    assert process.returncode == 0, err
    assert not any(word in err for word in LOUD), err
    return json.loads(out)


def live_tickets(world, company_id: int) -> Counter:
    rows = world.store.db.query("SELECT b.employee_id, b.month FROM b2b_tickets b JOIN b2b_employees e ON "
                                "e.id = b.employee_id WHERE e.company_id = ? AND b.revoked_at IS NULL", (company_id,))
    return Counter((r["employee_id"], r["month"]) for r in rows)


def issued_on_the_ticket_api(world, company_id: int) -> int:
    return world.store.db.query("SELECT count(*) AS n FROM tickets WHERE traveller_id LIKE ?",
                                (f"b2b-{company_id}-%",))[0]["n"]


async def test_three_roll_overs_at_once_issue_one_ticket_per_employee_month(world):
    company = world.company()
    assert (await company.sync([row(f"R{i:03d}") for i in range(150)])).status == 204
    at = datetime.now(timezone.utc)
    process = job(world.data_dir, "rollover", "--at", at.isoformat())
    await asyncio.sleep(0.5)  # it is starting up
    # Two more in this process, each on its own connections (as two server processes' jobs), side by side.
    results = [*await asyncio.gather(run_rollover(world.data_dir, at), run_rollover(world.data_dir, at)),
               await finished(process)]
    assert all(r["errors"] == [] for r in results), results
    assert sum(r["issued"] for r in results) == 150
    counts = live_tickets(world, company.id)
    assert len(counts) == 150 and set(counts.values()) == {1}
    assert issued_on_the_ticket_api(world, company.id) == 150  # no ticket signed twice was stored
    assert sum(r["documents"] for r in results) == 150
    documents = world.store.db.query("SELECT ticket_id FROM b2b_documents WHERE company_id = ?", (company.id,))
    assert len({d["ticket_id"] for d in documents}) == len(documents) == 150
    again = await run_rollover(world.data_dir, at)
    assert (again["issued"], again["documents"]) == (0, 0)


async def test_the_unique_index_not_a_read_decides_which_signed_ticket_is_stored(world):
    """Two roll-overs signed tickets for the same employees (both read "no ticket yet"): the
    second batch is dropped whole by the index, and none of its MTBs reaches the Ticket API."""
    company = world.company()
    assert (await company.sync([row(f"U{i}") for i in range(5)])).status == 204
    b2b = open_b2b(world.data_dir)
    try:
        now = datetime.now(timezone.utc)
        month = Month.of(today())
        record = b2b.store.get_company(company.id)
        employees = b2b.store.integration_employees(company.integration)
        first, second = (service.sign_tickets(b2b, record, employees, month, now) for _ in range(2))
        assert {n.employee_id for n in first} == {n.employee_id for n in second} == {e.id for e in employees}
        terms = lambda employee: service.issue_terms(b2b, employee, today(), month)  # noqa: E731
        assert len(b2b.store.issue_tickets(company.id, first, terms, service.ACTOR, now)) == 5
        assert b2b.store.issue_tickets(company.id, second, terms, service.ACTOR, now) == []
        assert issued_on_the_ticket_api(world, company.id) == 5
        assert b2b.store.pending_documents() >= 5
    finally:
        b2b.ctx.run.close()
    await run_rollover(world.data_dir, now)  # renders what is waiting
    assert set(live_tickets(world, company.id).values()) == {1}


async def test_an_hr_sync_during_roll_overs_leaves_no_live_ticket_to_an_offboarded_employee(world):
    company = world.company()
    roster = [row(f"S{i:03d}") for i in range(120)]
    assert (await company.sync(roster)).status == 204
    at = datetime.now(timezone.utc)
    processes = [job(world.data_dir, "rollover", "--at", at.isoformat()) for _ in range(2)]
    await asyncio.sleep(0.3)  # the roll-overs under way
    assert (await company.sync(roster[:60])).status == 204  # S060.. leave
    for process in processes:
        assert (await finished(process))["errors"] == []
    await run_rollover(world.data_dir, datetime.now(timezone.utc))
    employees = {e["hrIntergartionLinks"][0]["hrId"]: e for e in await company.employees(perPage="100")}
    employees |= {e["hrIntergartionLinks"][0]["hrId"]: e for e in await company.employees(perPage="100", page="2")}
    live = Counter(employee_id for employee_id, _ in live_tickets(world, company.id).elements())
    assert len(employees) == 120
    for hr_id, employee in employees.items():
        stays = hr_id < "S060"
        assert employee["subscription"]["status"] == ("active" if stays else "cancelled"), hr_id
        assert live[employee["id"]] == (1 if stays else 0), hr_id
        assert (employee["ticket"] is not None) == stays, hr_id
    states = world.store.db.query("SELECT t.state, count(*) AS n FROM tickets t WHERE t.traveller_id LIKE ? "
                                  "GROUP BY t.state", (f"b2b-{company.id}-%",))
    by_state = {r["state"]: r["n"] for r in states}
    assert by_state.get("active") == 60 and by_state.get("revoked", 0) == sum(by_state.values()) - 60


async def test_two_senders_deliver_each_webhook_once_in_order_per_employee(world):
    company = world.company()
    receiver = Receiver()
    await endpoint(world, company, receiver)
    try:
        assert (await company.sync([row(f"W{i:02d}") for i in range(40)])).status == 204
        await run_rollover(world.data_dir, datetime.now(timezone.utc))
        senders = [job(world.data_dir, "deliver") for _ in range(2)]
        results = [await finished(p) for p in senders]
        assert sum(r["attempts"] for r in results) == 80 and world.store.pending_deliveries() == 0
        ids = [e["event"]["id"] for e in receiver.events]
        assert len(ids) == len(set(ids)) == 80
        per_employee: dict[int, list[str]] = {}
        for event in receiver.events:
            payload = event["payload"]
            per_employee.setdefault(payload.get("employeeId", payload["id"]), []).append(event["event"]["type"])
        assert len(per_employee) == 40
        assert all(types == ["employee-subscription-changed", "new-employee-document-generated"]
                   for types in per_employee.values())
    finally:
        await receiver.stop()


async def test_two_servers_on_one_database_share_each_keys_limit(tmp_path, database_for):
    world = start_world(tmp_path / "data", database_for(), rate_limit={"requests": 10, "window_seconds": 60,
                                                                      "block_seconds": 300})
    config = json.loads((world.data_dir / "config.json").read_text())
    (world.data_dir / "config.json").write_text(json.dumps({**config, "shared_limits": True}))
    world.server.stop()
    servers = [ServerThread(app_from_data_dir(world.data_dir)).start() for _ in range(2)]
    try:
        async with aiohttp.ClientSession() as session:
            world.session = session
            company = world.company()
            statuses = []
            for i in range(10):
                world.server = servers[i % 2]
                statuses.append((await company.get("/employees")).status)
            assert statuses == [200] * 10
            for server in servers:  # the 11th request in the window, on either server
                world.server = server
                reply = await company.get("/employees")
                assert reply.status == 429 and 0 < int(reply.headers["Retry-After"]) <= 300
    finally:
        for server in servers:
            server.stop()
        world.store.db.close()


async def test_two_servers_running_their_own_jobs_issue_render_and_deliver_once(tmp_path, database_for):
    """The servers' own background jobs (roll-over, documents, webhooks), in two servers on one
    database, after an HR sync: every employee gets one ticket and one document, and the
    receiver every event once."""
    world = start_world(tmp_path / "data", database_for(), jobs=True, rollover_interval_seconds=0.2,
                        document_poll_seconds=0.2, webhook_poll_seconds=0.2)
    second = ServerThread(app_from_data_dir(world.data_dir)).start()
    receiver = Receiver()
    try:
        async with aiohttp.ClientSession() as session:
            world.session = session
            company = world.company()
            await endpoint(world, company, receiver)
            assert (await company.sync([row(f"J{i:02d}") for i in range(30)])).status == 204
            for _ in range(600):  # bounded: the jobs poll every 0.2 s
                if len(receiver.events) >= 60 and world.store.pending_documents() == 0:
                    break
                await asyncio.sleep(0.1)
            counts = live_tickets(world, company.id)
            assert len(counts) == 30 and set(counts.values()) == {1}
            documents = world.store.db.query("SELECT ticket_id FROM b2b_documents WHERE company_id = ?", (company.id,))
            assert len({d["ticket_id"] for d in documents}) == len(documents) == 30
            ids = [e["event"]["id"] for e in receiver.events]
            assert len(ids) == len(set(ids)) == 60
    finally:
        await receiver.stop()
        second.stop()
        world.server.stop()
        world.store.db.close()
