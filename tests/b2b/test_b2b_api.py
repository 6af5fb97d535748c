"""The B2B API over real HTTP on 127.0.0.1: keys and permissions, the published shapes, every
list's paging, sorting and filters, the HR sync's rules, the roll-over, documents."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from server.b2b.calendar import Month
from server.b2b.cli import run_rollover
from server.b2b.subscription import Plan

from .conftest import row, today

pytestmark = pytest.mark.usefixtures("world")


# --- keys, permissions, companies -------------------------------------------------------------

async def test_health_needs_no_key(world, acme):
    async with world.session.get(world.base + "/health") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}


async def test_wrong_unknown_and_disabled_keys_are_401(world, acme):
    key_id, secret = acme.key_id, acme.secret
    for auth in ((key_id, "wrong"), ("8d1f2b8e-4a0d-4f52-9c1e-2b7e6f0a9d11", secret), ("not-a-uuid", secret)):
        reply = await acme.get("/employees", auth=auth)
        assert reply.status == 401 and reply.body["code"] == "invalid_credentials", reply
        assert reply.headers["WWW-Authenticate"].startswith("Basic")
    async with world.session.get(world.base + "/employees") as response:
        assert response.status == 401
    disabled = acme.key(enabled=False)
    reply = await acme.get("/employees", auth=disabled)
    assert reply.status == 401 and reply.body["code"] == "key_disabled"
    world.store.set_company_api(acme.id, False)
    reply = await acme.get("/employees")
    assert reply.status == 401 and reply.body["code"] == "api_access_disabled"
    world.store.set_company_api(acme.id, True)
    assert (await acme.get("/employees")).status == 200


async def test_a_missing_permission_is_403_naming_it(acme):
    viewer = acme.key("view-employees")
    reply = await acme.get("/hr-integrations", auth=viewer)
    assert reply.status == 403 and "view-hr-integrations" in reply.body["message"]
    reply = await acme.call("POST", f"/hr-integrations/{acme.integration}/sync", auth=viewer,
                            body={"syncId": "s", "employees": [row("E1")]})
    assert reply.status == 403
    missing = {d["message"] for d in reply.body["details"]}
    assert missing == {"missing add-employees", "missing update-employees", "missing remove-employees"}
    no_remove = acme.key("view-employees", "add-employees", "update-employees")
    reply = await acme.call("POST", f"/hr-integrations/{acme.integration}/sync", auth=no_remove,
                            body={"syncId": "s", "employees": [row("E1")]})
    assert reply.status == 403 and reply.body["message"].endswith("remove-employees")
    assert (await acme.get("/employees", auth=viewer)).status == 200


async def test_another_companys_ids_are_404_never_403(world, acme):
    other = world.company("Other GmbH")
    assert (await other.sync([row("O1")])).status == 204
    await run_rollover(world.data_dir, datetime.now(timezone.utc))
    theirs = (await other.employees())[0]["id"]
    [document] = (await other.get("/employee-documents")).body["data"]["data"]
    for path in (f"/employees/{theirs}", f"/employees/{theirs}/documents", f"/employees/{theirs}/ticket",
                 f"/employee-documents/{document['id']}", f"/employee-documents/{document['id']}/download",
                 f"/hr-integrations/{other.integration}"):
        reply = await acme.get(path)
        assert reply.status == 404, (path, reply)
        assert (await other.get(path)).status == 200, path
    reply = await acme.call("POST", f"/hr-integrations/{other.integration}/sync",
                            body={"syncId": "x", "employees": [row("E1")]})
    assert reply.status == 404
    assert await acme.employees() == []
    assert (await acme.get("/employees/abc")).status == 404
    assert (await acme.get("/employees/%C2%B2")).status == 404


# --- the published shapes ---------------------------------------------------------------------

async def test_employee_resource_has_the_published_fields(world):
    company = world.company(plan=Plan("split-pay-plan", 29.0))
    assert (await company.sync([row("emp_HR_001")], sync_id="sync-2024-05-14-001")).status == 204
    employee = await company.employee("emp_HR_001")
    assert set(employee) == {"id", "firstName", "lastName", "email", "dateOfBirth", "profileImage", "resource",
                             "subscription", "plan", "ticket", "hrIntergartionLinks", "_links"}
    assert employee["resource"] == "employee" and employee["lastName"] == "Müller"
    assert employee["plan"] == {"type": "split-pay-plan", "contractSigningStatus": "accepted",
                                "employeeContributionAmount": {"label": "€29.00", "value": 29.0}}
    assert employee["subscription"] == {"status": "active", "startAt": (today() - timedelta(days=365)).isoformat(),
                                        "nextTicketAt": today().isoformat(), "pausedAt": None, "cancelledAt": None,
                                        "reactivatedAt": None}
    assert employee["ticket"] is None
    [link] = employee["hrIntergartionLinks"]
    assert link["type"] == "hr-integration" and link["hrId"] == "emp_HR_001"
    assert link["hrIntegrationId"] == company.integration and link["lastSyncId"] == "sync-2024-05-14-001"
    assert link["lastSynced"].endswith("Z")
    assert employee["_links"]["self"] == {"href": f"{world.base}/employees/{employee['id']}",
                                          "type": "application/json"}
    assert employee["_links"]["employeeDocuments"]["href"] == f"{world.base}/employees/{employee['id']}/documents"
    single = await company.get(f"/employees/{employee['id']}")
    assert single.status == 200 and single.body == {"data": employee}


async def test_roll_over_issues_one_ticket_per_active_employee_per_month_run_twice(world):
    company = world.company()
    roster = [row(f"E{i}") for i in range(5)]
    roster.append(row("LATER", startDate=(today() + timedelta(days=40)).isoformat()))
    assert (await company.sync(roster)).status == 204
    now = datetime.now(timezone.utc)
    first = await run_rollover(world.data_dir, now)
    second = await run_rollover(world.data_dir, now + timedelta(minutes=5))
    assert second["issued"] == 0 and second["documents"] == 0
    employees = await company.employees()
    ticketed = [e for e in employees if e["ticket"]]
    assert len(ticketed) == 5 and first["issued"] >= 5
    month = str(Month.of(today()))
    for employee in ticketed:
        ticket = employee["ticket"]
        assert ticket["ticketMonth"] == month and ticket["validUntil"] == Month.of(today()).last.isoformat()
        assert employee["subscription"]["nextTicketAt"] == Month.of(today()).next().first.isoformat()
        docs = (await company.get(f"/employees/{employee['id']}/documents")).body["data"]
        assert docs["total"] == 1 and docs["data"][0]["documentName"].endswith("Job Ticket")
    later = await company.employee("LATER")
    assert later["ticket"] is None and later["subscription"]["status"] == "pending"
    assert later["subscription"]["nextTicketAt"] == (today() + timedelta(days=40)).isoformat()
    # The ticket is a real one on the Ticket API's side: its holder, validity and fare.
    mtb = await company.get(f"/employees/{ticketed[0]['id']}/ticket")
    assert mtb.status == 200 and mtb.body["data"]["ticketId"] == ticketed[0]["ticket"]["ticketId"]
    stored = world.store.db.query("SELECT traveller_name, fare, state FROM tickets WHERE ticket_id = ?",
                                  (ticketed[0]["ticket"]["ticketId"],))[0]
    assert stored["state"] == "active" and stored["traveller_name"] == "Anna Müller"
    assert '"amount":49.0' in stored["fare"]


async def test_documents_metadata_download_and_409_when_not_downloadable(world):
    company = world.company()
    assert (await company.sync([row("D1"), row("D2")])).status == 204
    await run_rollover(world.data_dir, datetime.now(timezone.utc))
    listing = (await company.get("/employee-documents")).body["data"]
    assert listing["total"] == 2
    document = listing["data"][0]
    assert set(document) == {"id", "employeeId", "documentName", "documentFileType", "downloadable", "createdAt",
                             "updatedAt", "resource", "_links"}
    assert document["documentFileType"] == "pdf" and document["downloadable"] is True
    assert (await company.get(f"/employee-documents/{document['id']}")).body == {"data": document}
    pdf = await company.get(f"/employee-documents/{document['id']}/download")
    assert pdf.status == 200 and pdf.headers["Content-Type"] == "application/pdf" and pdf.raw.startswith(b"%PDF")
    # D1 leaves: its ticket is revoked and its document no longer downloadable.
    assert (await company.sync([row("D2")])).status == 204
    await run_rollover(world.data_dir, datetime.now(timezone.utc))
    gone = (await company.employee("D1"))
    [doc] = (await company.get(f"/employees/{gone['id']}/documents")).body["data"]["data"]
    assert doc["downloadable"] is False
    reply = await company.get(f"/employee-documents/{doc['id']}/download")
    assert reply.status == 409 and reply.body["code"] == "not_downloadable"


# --- lists: paging, sorting, filters ---------------------------------------------------------

async def test_employee_list_paging_sorting_and_filters(world):
    company = world.company()
    roster = [row(f"P{i:02d}", first=f"F{i:02d}", last=f"L{24 - i:02d}") for i in range(25)]
    roster[3]["plan"] = {"type": "split-pay-plan", "employeeContributionAmount": 10}
    roster[4]["startDate"] = (today() + timedelta(days=60)).isoformat()
    assert (await company.sync(roster)).status == 204
    page = (await company.get("/employees", params={"page": "2", "perPage": "10"})).body["data"]
    assert (page["page"], page["perPage"], page["totalPages"], page["total"]) == (2, 10, 3, 25)
    assert len(page["data"]) == 10
    last = (await company.get("/employees", params={"page": "3", "perPage": "10"})).body["data"]
    assert len(last["data"]) == 5
    default = (await company.get("/employees")).body["data"]
    assert default["perPage"] == 10 and [e["id"] for e in default["data"]] == sorted(e["id"] for e in default["data"])
    by_last = (await company.get("/employees", params={"sortField": "lastName", "sortOrder": "asc",
                                                        "perPage": "100"})).body["data"]["data"]
    assert [e["lastName"] for e in by_last] == sorted(e["lastName"] for e in by_last)
    desc = (await company.get("/employees", params={"sortField": "firstName", "sortOrder": "desc",
                                                     "perPage": "5"})).body["data"]["data"]
    assert [e["firstName"] for e in desc] == ["F24", "F23", "F22", "F21", "F20"]
    for params in ({"sortField": "salary"}, {"sortOrder": "up"}, {"perPage": "101"}, {"page": "0"},
                   {"status": "sleeping"}, {"planType": "free"}, {"ids": "1,x"}):
        reply = await company.get("/employees", params=params)
        assert reply.status == 400, (params, reply)
        assert reply.body["details"][0]["field"] == next(iter(params))
    assert [e["hrIntergartionLinks"][0]["hrId"] for e in await company.employees(status="pending")] == ["P04"]
    assert {e["hrIntergartionLinks"][0]["hrId"] for e in await company.employees(status="pending,active")} == {
        f"P{i:02d}" for i in range(25)}
    assert [e["hrIntergartionLinks"][0]["hrId"] for e in await company.employees(planType="split-pay-plan")] == ["P03"]
    assert [e["hrIntergartionLinks"][0]["hrId"] for e in await company.employees(email="P07@EXAMPLE.com")] == ["P07"]
    some = [e["id"] for e in (await company.employees())[:3]]
    picked = await company.employees(ids=",".join(map(str, some)))
    assert sorted(e["id"] for e in picked) == sorted(some)


async def test_document_and_integration_lists_page_sort_and_filter(world):
    company = world.company()
    assert (await company.sync([row(f"Q{i}") for i in range(3)])).status == 204
    await run_rollover(world.data_dir, datetime.now(timezone.utc))
    docs = (await company.get("/employee-documents", params={"perPage": "2"})).body["data"]
    assert (docs["total"], docs["totalPages"], len(docs["data"])) == (3, 2, 2)
    ids = [d["id"] for d in (await company.get("/employee-documents", params={"sortField": "id",
                                                                               "sortOrder": "asc"})).body["data"]["data"]]
    assert ids == sorted(ids)
    employee_id = docs["data"][0]["employeeId"]
    mine = (await company.get("/employee-documents", params={"employeeId": str(employee_id)})).body["data"]
    assert mine["total"] == 1 and mine["data"][0]["employeeId"] == employee_id
    month = str(Month.of(today()))
    assert (await company.get("/employee-documents", params={"ticketMonth": month})).body["data"]["total"] == 3
    assert (await company.get("/employee-documents", params={"ticketMonth": "1999-01"})).body["data"]["total"] == 0
    assert (await company.get("/employee-documents", params={"ticketMonth": "May"})).status == 400
    assert (await company.get("/employee-documents", params={"sortField": "size"})).status == 400
    second = world.store.add_integration(company.id, "Second HR system", datetime.now(timezone.utc))
    integrations = (await company.get("/hr-integrations", params={"sortOrder": "desc"})).body["data"]
    assert [i["id"] for i in integrations["data"]] == [second, company.integration] and integrations["total"] == 2
    by_name = (await company.get("/hr-integrations", params={"sortField": "name"})).body["data"]["data"]
    assert [i["name"] for i in by_name] == ["JobTicket+ API Integration", "Second HR system"]
    fresh = (await company.get(f"/hr-integrations/{second}")).body["data"]
    assert fresh["status"] == "INITIAL SYNC PENDING" and fresh["lastSyncId"] is None


# --- HR sync ----------------------------------------------------------------------------------

async def test_sync_adds_updates_offboards_and_counts(world):
    company = world.company()
    assert (await company.sync([row("A"), row("B"), row("C")], sync_id="s1")).status == 204
    integration = (await company.get(f"/hr-integrations/{company.integration}")).body["data"]
    assert integration["counts"] == {"added": 3, "updated": 0, "offboarded": 0}
    assert integration["status"] == "SYNCED" and integration["lastSyncId"] == "s1"
    await run_rollover(world.data_dir, datetime.now(timezone.utc))
    b_ticket = (await company.employee("B"))["ticket"]["ticketId"]
    changed = row("A", last="Schmidt", email="anna.schmidt@example.com")
    assert (await company.sync([changed, row("C")], sync_id="s2")).status == 204
    integration = (await company.get(f"/hr-integrations/{company.integration}")).body["data"]
    assert integration["counts"] == {"added": 0, "updated": 1, "offboarded": 1}
    a = await company.employee("A")
    assert a["lastName"] == "Schmidt" and a["email"] == "anna.schmidt@example.com"
    assert a["hrIntergartionLinks"][0]["lastSyncId"] == "s2"
    b = await company.employee("B")
    assert b["subscription"]["status"] == "cancelled" and b["subscription"]["cancelledAt"] == today().isoformat()
    assert b["subscription"]["nextTicketAt"] is None
    # Offboarding revokes through the Ticket API: the ticket is revoked and on the deny list.
    await run_rollover(world.data_dir, datetime.now(timezone.utc))
    state = world.store.db.query("SELECT state FROM tickets WHERE ticket_id = ?", (b_ticket,))[0]["state"]
    assert state == "revoked"
    assert world.store.db.query("SELECT count(*) AS n FROM deny_list WHERE ticket_id = ?", (b_ticket,))[0]["n"] == 1
    assert (await company.employee("B"))["ticket"] is None


async def test_termination_keeps_the_ticket_until_the_day_then_revokes(world):
    company = world.company()
    assert (await company.sync([row("T")])).status == 204
    now = datetime.now(timezone.utc)
    await run_rollover(world.data_dir, now)
    ticket_id = (await company.employee("T"))["ticket"]["ticketId"]
    end = today() + timedelta(days=3)
    assert (await company.sync([row("T", terminationDate=end.isoformat())])).status == 204
    t = await company.employee("T")
    assert t["subscription"]["status"] == "scheduled-cancellation"
    assert t["subscription"]["cancelledAt"] == (end + timedelta(days=1)).isoformat()
    await run_rollover(world.data_dir, now + timedelta(days=1))
    assert world.store.db.query("SELECT state FROM tickets WHERE ticket_id = ?", (ticket_id,))[0]["state"] == "active"
    result = await run_rollover(world.data_dir, now + timedelta(days=5))
    assert result["revoked"] == 1 and result["refreshed"] == 1
    assert world.store.db.query("SELECT state FROM tickets WHERE ticket_id = ?", (ticket_id,))[0]["state"] == "revoked"
    assert (await company.employee("T"))["subscription"]["status"] == "cancelled"


async def test_an_absence_covering_next_month_pauses_it(world):
    company = world.company()
    month = Month.of(today()).next()
    absence = {"startDate": month.first.isoformat(), "endDate": month.last.isoformat()}
    assert (await company.sync([row("AB", absences=[absence])])).status == 204
    now = datetime.now(timezone.utc)
    await run_rollover(world.data_dir, now)
    sub = (await company.employee("AB"))["subscription"]
    assert sub["status"] == "scheduled-pause" and sub["pausedAt"] == month.first.isoformat()
    assert sub["reactivatedAt"] == month.next().first.isoformat()
    assert sub["nextTicketAt"] == month.next().first.isoformat()  # the paused month gets none
    # A short absence (not a whole month) pauses nothing.
    short = {"startDate": month.first.isoformat(), "endDate": (month.first + timedelta(days=10)).isoformat()}
    assert (await company.sync([row("AB", absences=[short])])).status == 204
    assert (await company.employee("AB"))["subscription"]["status"] == "active"


async def test_same_sync_id_same_body_is_a_noop_other_body_409(world):
    company = world.company()
    body = [row("I1"), row("I2")]
    assert (await company.sync(body, sync_id="same")).status == 204
    before = await company.employees()
    assert (await company.sync(body, sync_id="same")).status == 204
    assert await company.employees() == before
    reply = await company.sync([row("I1")], sync_id="same")
    assert reply.status == 409 and reply.body["details"][0]["field"] == "syncId"
    assert len(await company.employees(status="active")) == 2


async def test_an_empty_roster_is_refused_unless_meant(world):
    company = world.company()
    assert (await company.sync([row("X1")])).status == 204
    reply = await company.sync([])
    assert reply.status == 422 and reply.body["code"] == "empty_roster"
    assert reply.body["details"][0]["field"] == "employees"
    assert (await company.employee("X1"))["subscription"]["status"] == "active"
    assert (await company.sync([], allowEmptyRoster=True)).status == 204
    assert (await company.employee("X1"))["subscription"]["status"] == "cancelled"


async def test_a_bad_row_is_422_with_index_and_field_and_nothing_is_applied(world):
    company = world.company()
    assert (await company.sync([row("K1")])).status == 204
    bad = [row("K1", last="Changed"), row("K2"), row("K3", email="not-an-email"), row("K2"),
           row("K5", startDate="01.05.2024"), {**row("K6"), "firstName": 7}, row("K7", terminationDate="2000-01-01")]
    reply = await company.sync(bad)
    assert reply.status == 422
    fields = {(d["index"], d["field"]) for d in reply.body["details"]}
    assert fields == {(2, "employees[2].email"), (3, "employees[3].hrId"), (4, "employees[4].startDate"),
                      (5, "employees[5].firstName"), (6, "employees[6]")}
    assert [e["lastName"] for e in await company.employees()] == ["Müller"]
    integration = (await company.get(f"/hr-integrations/{company.integration}")).body["data"]
    assert integration["errors"] and integration["status"] == "SYNC FAILED"
    for raw, status in ((b"{not json", 400), (b"[]", 422)):
        reply = await company.call("POST", f"/hr-integrations/{company.integration}/sync", raw=raw)
        assert reply.status == status, reply
    reply = await company.call("POST", f"/hr-integrations/{company.integration}/sync", body={"employees": []})
    assert reply.status == 422 and reply.body["details"][0]["field"] == "syncId"


async def test_auto_sync_false_leaves_an_employee_alone(world):
    company = world.company()
    assert (await company.sync([row("M1"), row("M2")])).status == 204
    assert (await company.sync([row("M1"), row("M2", last="Ignored", autoSyncEmployee=False)])).status == 204
    assert (await company.employee("M2"))["lastName"] == "Müller"
    assert (await company.sync([row("M1"), row("NEW", autoSyncEmployee=False)])).status == 204
    assert {e["hrIntergartionLinks"][0]["hrId"] for e in await company.employees()} == {"M1", "M2"}


async def test_rate_limit_100_a_minute_then_429_with_retry_after_and_a_block(tmp_path, database_for):
    import aiohttp

    from .conftest import start_world

    world = start_world(tmp_path / "rl", database_for())
    try:
        async with aiohttp.ClientSession() as session:
            world.session = session
            company = world.company()
            statuses = [(await company.get("/employees")).status for _ in range(100)]
            assert statuses == [200] * 100
            reply = await company.get("/employees")
            assert reply.status == 429 and int(reply.headers["Retry-After"]) == 300
            again = await company.get("/employees")
            assert again.status == 429 and 0 < int(again.headers["Retry-After"]) <= 300
            other = company.key()
            assert (await company.get("/employees", auth=other)).status == 200
            async with session.get(world.base + "/health") as response:
                assert response.status == 200
    finally:
        world.server.stop()
        world.store.db.close()

