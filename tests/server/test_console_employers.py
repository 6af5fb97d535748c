"""The console's Employers pages over real HTTP, on both store backends: companies, a company's
keys, HR integrations and webhook endpoints, its employees with their subscription state, an
integration's sync runs (counts of the applied ones, errors of the refused ones), and an
endpoint's delivery log with "retry now" (admin only, CSRF) and "enable again"; the deliveries
go to a real receiver on 127.0.0.1 and are sent by the server's own webhook sender."""
from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest

from server import cli
from server.b2b import keys, webhooks
from server.b2b.cli import run_deliver, run_rollover
from server.b2b.records import PERMISSIONS, Product, Query
from server.b2b.store import B2BStore
from server.b2b.subscription import Plan

from ..b2b.conftest import LOOPBACK, row
from ..b2b.test_b2b_webhooks import Receiver
from .conftest import PASSWORD, Deployment
from .console_client import ConsoleClient, Page, assert_times_in_zone, client_session

FARE = {"amount": 49.0, "currency": "EUR", "vatAmount": 3.43, "vatPercent": 7.0}
ZONE = "Europe/Berlin"
LOOPBACK_HOOKS = {"webhook_allowed_networks": LOOPBACK}  # the receivers here are on 127.0.0.1


@dataclass
class Employer:
    """A company on a deployment: an HR integration, an API key, a webhook endpoint to a receiver."""

    d: Deployment
    store: B2BStore
    session: aiohttp.ClientSession
    receiver: Receiver
    company: int
    integration: int
    endpoint: int
    key_id: str
    secret: str

    async def sync(self, sync_id: str, employees: list[dict[str, Any]]) -> int:
        auth = base64.b64encode(f"{self.key_id}:{self.secret}".encode()).decode()
        async with self.session.post(f"{self.d.server.origin}/b2b/hr-integrations/{self.integration}/sync",
                                     json={"syncId": sync_id, "employees": employees},
                                     headers={"Authorization": f"Basic {auth}"}) as reply:
            return reply.status

    def deliveries(self, status: str | None = None) -> list[Any]:
        return self.store.deliveries(self.endpoint, status=status)

    @property
    def webhook_path(self) -> str:
        return f"/console/employers/{self.company}/webhooks/{self.endpoint}"

    def retry_path(self, delivery: int) -> str:
        return f"{self.webhook_path}/deliveries/{delivery}/retry"


async def make_employer(d: Deployment, session: aiohttp.ClientSession, receiver: Receiver) -> Employer:
    store = B2BStore(d.store().db)
    now = datetime.now(timezone.utc)
    company = store.add_company("ACME Logistics", Product("job-ticket", ("A", "B"), ("bus",), FARE), Plan(), now)
    integration = store.add_integration(company, "Personio", now)
    key, secret = keys.new_key(company, list(PERMISSIONS), now, name="HR platform")
    store.add_api_key(key)
    receiver.secret = webhooks.new_secret()
    endpoint = store.add_endpoint(company, await receiver.start(), [webhooks.SUBSCRIPTION_CHANGED], receiver.secret,
                                  now)
    return Employer(d, store, session, receiver, company, integration, endpoint, key.key_id, secret)


@pytest.fixture
async def employer_on(api_for) -> AsyncIterator[Any]:
    """``await employer_on(deployment, fail=n)``: a company whose receiver fails its first n requests."""
    made: list[Employer] = []

    async def make(d: Deployment, fail: int = 0) -> Employer:
        cli.add_credential(d.data_dir, "support1", "support", PASSWORD)
        made.append(await make_employer(d, (await api_for(d)).session, Receiver(fail=fail)))
        return made[-1]

    yield make
    for employer in made:
        await employer.receiver.stop()
        employer.store.db.close()


async def signed_in(d: Deployment, session: aiohttp.ClientSession, user: str = "admin") -> ConsoleClient:
    client = ConsoleClient(d.server.origin, session)
    assert (await client.sign_in(user)).status == 303
    return client


def section(page: Page, heading: str) -> str:
    start = page.text.index(f">{heading}</h2>")
    end = page.text.find("<h2", start)
    return page.text[start:end if end > 0 else None]


def delivery_row(page: Page, delivery: int) -> str:
    found = re.search(rf"<tr>\s*<td>{delivery}</td>.*?</tr>", page.text, re.S)
    assert found, page.text[:3000]
    return found.group(0)


async def test_employers_companies_employees_and_sync_runs(make_server, employer_on):
    d = make_server(console={"timezone": ZONE}, b2b={"jobs": False, "timezone": ZONE, **LOOPBACK_HOOKS})
    acme = await employer_on(d)
    assert await acme.sync("sync-1", [row("A1"), row("A2", "Bea", "Berg"), row("A3", "Cem", "Çelik")]) == 204
    assert await acme.sync("sync-2", [row("A1"), row("A2", "Bea", "Berg")]) == 204  # A3 left: offboarded
    assert await acme.sync("sync-3", [{**row("A1"), "email": "not an address"}]) == 422  # refused, nothing applied
    await run_rollover(d.data_dir, datetime.now(timezone.utc))  # this month's tickets
    [ticket] = [e.ticket for e in acme.store.list_employees(acme.company, Query("id", "asc", 0, 100))[0]
                if e.hr_id == "A1"]
    other = acme.store.add_company("Other GmbH", Product("job-ticket", (), (), FARE), Plan(),
                                   datetime.now(timezone.utc))
    async with client_session() as session:
        client = await signed_in(d, session)
        employers = await client.get("/console/employers")
        assert employers.status == 200 and "Employers</a>" in employers.text
        acme_row = re.search(r"<tr>\s*<td><a href=\"/console/employers/\d+\">ACME Logistics</a>.*?</tr>",
                             employers.text, re.S).group(0)
        assert f'href="/console/employers/{acme.company}/employees">3</a>' in acme_row
        assert "sub-active" in acme_row and "sub-cancelled" in acme_row and ">enabled</span>" in acme_row
        assert "Other GmbH" in employers.text

        company = await client.get(f"/console/employers/{acme.company}")
        assert company.status == 200 and "49.00 EUR a month" in company.text
        integrations = section(company, "HR integrations")
        assert "Personio" in integrations and "SYNC FAILED" in integrations and "sync-2" in integrations
        assert re.search(r"<td>0</td><td>0</td><td>1</td>", integrations)  # sync-2: one offboarded
        assert '<span class="stale">1</span>' in integrations  # the refused sync's error
        assert acme.key_id in section(company, "API keys") and "HR platform" in company.text
        assert acme.secret not in company.text and acme.receiver.secret not in company.text  # never shown
        assert assert_times_in_zone(company.text, ZONE) >= 4

        everyone = await client.get(f"/console/employers/{acme.company}/employees")
        assert everyone.text.count("sub-active") >= 2 and "Çelik" in everyone.text
        assert "a1@example.com" in everyone.text
        assert f'href="/console/tickets/{ticket.ticket_id}"' in everyone.text and str(ticket.month) in everyone.text
        assert everyone.text.index("Berg") < everyone.text.index("Müller")  # by last name
        cancelled = await client.get(f"/console/employers/{acme.company}/employees?status=cancelled")
        assert "Çelik" in cancelled.text and "Berg" not in cancelled.text
        assert (await client.get(f"/console/employers/{acme.company}/employees?status=gone")).status == 400

        runs = await client.get(f"/console/employers/{acme.company}/integrations/{acme.integration}")
        assert runs.status == 200 and "1&ndash;3 of 3" in runs.text
        table = section(runs, "Sync runs")
        refused, second, first = re.findall(r"<tr>\s*<td><time.*?</tr>", table, re.S)  # newest first
        assert "refused" in refused and "employees[0].email" in refused
        assert "sync-2" in second and re.search(r"<td>0</td><td>0</td><td>1</td><td>none</td>", second)
        assert "sync-1" in first and re.search(r"<td>3</td><td>0</td><td>0</td><td>none</td>", first)

        for path in (f"/console/employers/{other + 1000}",
                     f"/console/employers/{other}/integrations/{acme.integration}",
                     f"/console/employers/{other}/webhooks/{acme.endpoint}", "/console/employers/1e3",
                     f"/console/employers/{acme.company}/integrations/x"):
            assert (await client.get(path)).status == 404, path  # another company's ids are not found either


async def test_retry_now_makes_a_delivery_due_and_only_an_admin_can_press_it(make_server, employer_on):
    d = make_server(b2b={"jobs": False, **LOOPBACK_HOOKS})
    acme = await employer_on(d, fail=1)
    assert await acme.sync("sync-1", [row("R1")]) == 204
    assert (await run_deliver(d.data_dir, None))["attempts"] == 1  # the receiver answers 500
    [delivery] = acme.deliveries()
    assert delivery.status == "pending" and delivery.next_attempt_at > datetime.now(timezone.utc)
    async with client_session() as session, client_session() as support_session:
        support = await signed_in(d, support_session, "support1")
        seen = await support.get(acme.webhook_path)
        assert seen.status == 200 and "HTTP 500" in delivery_row(seen, delivery.id)
        assert "<fieldset disabled" in delivery_row(seen, delivery.id) and "can look but not change" in seen.text
        assert acme.receiver.secret not in seen.text  # the endpoint's signing secret is never shown
        refused = await support.post(acme.retry_path(delivery.id), {"csrf": seen.csrf()})
        assert refused.status == 403 and "may look but not change" in refused.text

        admin = await signed_in(d, session)
        assert (await admin.post(acme.retry_path(delivery.id), {})).status == 403  # no CSRF token
        assert acme.deliveries()[0].next_attempt_at == delivery.next_attempt_at  # nothing changed
        pressed = await admin.submit(acme.webhook_path, acme.retry_path(delivery.id), {})
        assert pressed.status == 303 and pressed.location.endswith("?done=retry-later")
        assert acme.deliveries()[0].next_attempt_at <= datetime.now(timezone.utc)  # due now
        assert (await run_deliver(d.data_dir, None))["attempts"] == 1
        log = await admin.get(acme.webhook_path)
        row_ = delivery_row(log, delivery.id)
        assert ">delivered</span>" in row_ and "Retry now" not in row_ and "HTTP 500" in row_ and "HTTP 204" in row_
        again = await admin.post(acme.retry_path(delivery.id), {"csrf": log.csrf()})
        assert again.status == 409 and "delivered already" in again.text

        # a delivery that failed for good (24 h of failures) gets one more attempt
        acme.receiver.fail = 1
        assert await acme.sync("sync-2", [row("R1"), row("R2")]) == 204
        assert (await run_deliver(d.data_dir, datetime.now(timezone.utc) + timedelta(hours=25)))["attempts"] == 1
        [failed] = acme.deliveries("failed")
        page = await admin.get(acme.webhook_path + "?status=failed")
        assert "failed (1)" in page.text and ">failed</span>" in delivery_row(page, failed.id)
        assert (await admin.submit(acme.webhook_path, acme.retry_path(failed.id), {})).status == 303
        assert acme.deliveries()[0].status == "pending"
        assert (await run_deliver(d.data_dir, None))["attempts"] == 1
        assert [x.status for x in acme.deliveries()] == ["delivered", "delivered"]
        assert acme.receiver.statuses == [500, 204, 500, 204]

        # an endpoint disabled: its page says so, and an admin enables it again
        acme.store.set_endpoint_enabled(acme.endpoint, False, datetime.now(timezone.utc))
        disabled = await support.get(acme.webhook_path)
        assert "Enable again" in disabled.text and ">disabled</span>" in disabled.text
        enable = acme.webhook_path + "/enable"
        assert (await support.post(enable, {"csrf": disabled.csrf()})).status == 403
        assert (await admin.submit(acme.webhook_path, enable, {})).status == 303
        assert acme.store.get_endpoint(acme.endpoint).enabled


async def test_the_servers_sender_sends_a_retried_delivery_at_once(make_server, employer_on):
    # The sender looks for due deliveries only when woken (the poll is an hour): a retry that
    # arrives proves that "retry now" woke it.
    d = make_server(b2b={"jobs": True, **LOOPBACK_HOOKS, "webhook_poll_seconds": 3600, "rollover_interval_seconds": 3600})
    acme = await employer_on(d, fail=1)
    assert await acme.sync("sync-1", [row("W1")]) == 204  # the sync wakes the sender: one attempt, 500
    await _until(lambda: acme.receiver.statuses == [500])
    [delivery] = acme.deliveries()
    async with client_session() as session:
        admin = await signed_in(d, session)
        pressed = await admin.submit(acme.webhook_path, acme.retry_path(delivery.id), {})
        assert pressed.status == 303 and pressed.location.endswith("?done=retry")
        await _until(lambda: acme.receiver.statuses == [500, 204])
        page = await admin.get(acme.webhook_path + "?done=retry")
    assert "the webhook sender tries it at once" in page.text and ">delivered</span>" in delivery_row(page, delivery.id)


async def _until(condition: Any, rounds: int = 400) -> None:
    for _ in range(rounds):  # bounded: 20 s at most
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition never held")


async def test_the_employers_pages_are_absent_without_the_b2b_side(make_server):
    d = make_server(b2b={"enabled": False})
    async with client_session() as session:
        client = await signed_in(d, session)
        tickets = await client.get("/console/tickets")
        assert (await client.get("/console/employers")).status == 404
    assert ">Fleet</a>" in tickets.text and ">Employers</a>" not in tickets.text


def pager_of(page: Page, label: str) -> str:
    """What a list's pager says: ``"1&ndash;2 of 3"``."""
    found = re.search(rf'<nav class="pager" aria-label="{label}: pages">\s*<span>([^<]+)</span>', page.text)
    assert found, (label, page.text[:3000])
    return found.group(1)


async def test_every_employer_list_is_paged(make_server, employer_on):
    d = make_server(console={"page_size": 5}, b2b={"jobs": False, **LOOPBACK_HOOKS})  # six of everything: two pages
    acme = await employer_on(d)
    now = datetime.now(timezone.utc)
    for i in range(5):
        acme.store.add_company(f"Company {i}", Product("job-ticket", (), (), FARE), Plan(), now)
        acme.store.add_integration(acme.company, f"HR {i}", now)
        acme.store.add_endpoint(acme.company, f"http://127.0.0.1:9/hooks-{i}", [webhooks.SUBSCRIPTION_CHANGED],
                                webhooks.new_secret(), now)
        acme.store.add_api_key(keys.new_key(acme.company, list(PERMISSIONS), now, name=f"key {i}")[0])
    staff = [row(f"P{i}", "Al", last) for i, last in enumerate(("Adler", "Berg", "Cohn", "Dahl", "Ebert", "Zorn"))]
    for i in range(3):
        assert await acme.sync(f"sync-{i}a", staff[:6 - i]) == 204
        assert await acme.sync(f"sync-{i}b", [{**staff[0], "email": "nope"}]) == 422
    deliveries = len(acme.deliveries())
    assert deliveries >= 6
    company = f"/console/employers/{acme.company}"
    async with client_session() as session:
        client = await signed_in(d, session)
        for path, label, total in (("/console/employers", "Companies", 6), (f"{company}/employees", "Employees", 6),
                                   (f"{company}/integrations/{acme.integration}", "Sync runs", 6),
                                   (acme.webhook_path, "Deliveries", deliveries)):
            first, second = await client.get(path), await client.get(path + "?page=2")
            assert pager_of(first, label) == f"1&ndash;5 of {total}" and 'rel="next"' in first.text, label
            assert pager_of(second, label) == f"6&ndash;{min(10, total)} of {total}", label
        for param, label in (("integrations", "HR integrations"), ("webhooks", "Webhook endpoints"),
                             ("keys", "API keys")):  # the company page's three lists page on their own
            first, second = await client.get(company), await client.get(f"{company}?{param}=2")
            assert pager_of(first, label) == "1&ndash;5 of 6" and pager_of(second, label) == "6&ndash;6 of 6", label
        page_one, page_two = await client.get(f"{company}/employees"), await client.get(f"{company}/employees?page=2")
    assert "Adler" in page_one.text and "Ebert" in page_one.text and "Zorn" not in page_one.text
    assert "Zorn" in page_two.text and "Adler" not in page_two.text
