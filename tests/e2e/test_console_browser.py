"""The operator console in a real browser: Playwright driving Debian's Chromium against the
server as a real process on 127.0.0.1, with a real agent syncing to it.

An operator signs in (a wrong password first), finds a ticket issued in the test, sees its
validations arrive once the agent has synced (and an inspector's handheld's inspection), revokes
it from the page, finds the deny-list entry, sees the agent refuse the ticket (result 7) after
its next sync, looks at the fleet and a device, freezes and thaws another ticket with the
keyboard alone, and signs out; a form without its CSRF token does nothing; a support user sees
the buttons but cannot press them. On the employer side: the companies, a company, its
employees, an integration's sync runs, and a webhook delivery that failed, retried from the page
and then delivered to a receiver on 127.0.0.1. A keyboard user reads each time in UTC too. Every
page is checked in the browser with axe-core and the project's own checks (console_a11y.py), at
a desktop's and at a phone's width; the browser fetched nothing from anywhere but the server. A
screenshot of each page goes to the test's own folder (``tmp_path``).

Without Chromium, the playwright or the axe-playwright-python package the test is skipped with a
loud reason; under ``CI=true`` (``.ci/run`` installs them) it fails instead.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from server import cli
from server.b2b import keys, webhooks
from server.b2b.cli import run_rollover
from server.b2b.records import PERMISSIONS, Product
from server.b2b.store import B2BStore
from server.b2b.subscription import Plan
from server.config import load_config
from server.store import DeviceReport, Store, open_store

from ..b2b.conftest import row
from ..b2b.test_b2b_webhooks import Receiver
from ..server.conftest import PASSWORD, make_data_dir
from .conftest import ServerProcess, free_port
from .console_a11y import DESKTOP, PHONE, axe_problems, check_page, focused_name
from .test_agent_server import issue

CHROMIUM = "/usr/bin/chromium"
ZONE = "Europe/Berlin"  # the operators' time zone (console.timezone)


def device_state(version: str = "1.4.0", depth: int = 0, alarms: list | None = None, **extra: Any) -> dict:
    """A state report as a device sends it at each sync (POST /device/state)."""
    return {"softwareVersion": version, "outbox": {"depth": depth, "parked": 0},
            "listAgesSeconds": {"denyList": 2.0, "uses": 2.0, "participantMetadata": 40.0}, "alarms": alarms or [],
            "cache": {"ok": True}, **extra}


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 20_000


def browser_unavailable(reason: str) -> None:
    message = (f"console browser tests not possible: {reason}. Install Debian's Chromium (apt-get install "
               f"chromium) and the playwright and axe-playwright-python packages (pip install -e '.[test]'); "
               f"never `playwright install`")
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true, so this is a failure, not a skip", pytrace=False)
    pytest.skip(f"SKIPPED WITHOUT A BROWSER: {message}")


@pytest.fixture
def fetched() -> list[str]:
    """Every URL the browser asked for (pages, styles, icons, anything else)."""
    return []


@pytest.fixture
async def chromium(tmp_path: Path, fetched: list[str]) -> Any:
    """A Chromium of Debian's with a fresh profile, driven by Playwright."""
    if shutil.which(CHROMIUM) is None:
        browser_unavailable(f"{CHROMIUM} not found")
    try:
        import axe_playwright_python  # noqa: F401 - console_a11y runs it
        from playwright.async_api import async_playwright
    except ImportError as exc:
        browser_unavailable(f"playwright or axe-playwright-python not importable ({exc})")
    async with async_playwright() as driver:
        context = await driver.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        context.on("request", lambda request: fetched.append(request.url))
        try:
            yield context
        finally:
            await context.close()


@pytest.fixture
def console_server(tmp_path: Path) -> Any:
    # The webhook sender runs in the server but looks for due deliveries only when woken (a
    # change, or "retry now"): a retry that arrives was the button's doing, not the schedule's.
    data = make_data_dir(tmp_path / "server", console={"timezone": ZONE},
                         rate_limit={"requests": 100_000, "window_seconds": 60, "block_seconds": 1, "roles": {}},
                         b2b={"timezone": ZONE, "webhook_poll_seconds": 3600,
                              "rollover_interval_seconds": 3600, "webhook_allowed_networks": ["127.0.0.1"]})
    cli.add_credential(data, "support1", "support", PASSWORD)
    process = ServerProcess(data).start()
    yield process
    process.stop()


@pytest.fixture
async def backoffice_of(console_server: ServerProcess) -> Any:
    import aiohttp

    from ..server.conftest import Api, Deployment

    async with aiohttp.ClientSession() as session:
        yield Api(Deployment(console_server.data_dir, console_server), session)  # type: ignore[arg-type]


async def shot(page: Any, folder: Path, name: str) -> None:
    """The page passes every check (console_a11y) at both widths, and its screenshot is saved."""
    await check_page(page, ZONE, name)
    await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def server_store(server: ServerProcess) -> Store:
    """The server's database, opened by the test as another process would."""
    return open_store(load_config(server.data_dir).database_target(), pool_size=1)


FOCUS = """() => { const e = document.activeElement, s = getComputedStyle(e);
    return {outlined: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2,
            what: e.tagName + '#' + e.id + ' ' + (e.textContent || '').trim().slice(0, 40)}; }"""


async def tab_until(page: Any, predicate: str, presses: int = 100) -> None:
    """Press Tab (at most ``presses`` times) until ``predicate`` (JavaScript, of the focused
    element) holds; every stop on the way shows where the focus is (an outline)."""
    for _ in range(presses):
        await page.keyboard.press("Tab")
        focus = await page.evaluate(FOCUS)
        assert focus["outlined"], f"no visible focus on {focus['what']}"
        if await page.evaluate(f"({predicate})(document.activeElement)"):
            return
    raise AssertionError(f"{presses} presses of Tab never reached {predicate}")


def assert_all_from(fetched: list[str], origin: str) -> None:
    """The browser fetched everything from the server itself: no CDN, no font or script from elsewhere."""
    assert any(url.endswith("/console/static/console.css") for url in fetched), fetched
    elsewhere = [url for url in fetched if not url.startswith(origin + "/") and not url.startswith("data:")]
    assert elsewhere == [], elsewhere


async def until(condition: Callable[[], bool], rounds: int = 400) -> None:
    for _ in range(rounds):  # bounded: 20 s at most
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition never held")


async def sign_in(page: Any, origin: str, user: str, password: str = PASSWORD) -> None:
    await page.goto(origin + "/console/login")
    await page.get_by_label("User name").fill(user)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def timeline_text(page: Any) -> str:
    return await page.locator("table.timeline").inner_text()


async def test_an_operator_follows_a_ticket_revokes_it_and_the_agent_refuses_it(
        chromium, fetched, console_server, backoffice_of, make_agent, tmp_path):
    origin = console_server.origin
    ticket_id, barcode = await issue(backoffice_of, "trav-browser")
    other_id, _ = await issue(backoffice_of, "trav-browser-2")
    agent = make_agent(origin)
    await agent.syncer.sync_once()
    page = await chromium.new_page()

    # a wrong password is refused; the right one lands on the tickets
    await page.goto(origin + "/console/tickets")
    assert page.url.startswith(origin + "/console/login")
    await sign_in(page, origin, "admin", "not the password")
    await page.get_by_text("Wrong user name or password").wait_for()
    await shot(page, tmp_path, "01-login-refused")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("heading", name="Tickets").wait_for()
    assert page.url == origin + "/console/tickets"
    # the checks notice what they look for: pale text (axe measures it), a pale digit (too short
    # for axe to decide: the test measures it) and a field without a label
    probe = "() => { const p = document.createElement('p'); p.id = 'probe'; p.style.color = '#aaa'; " \
            "p.innerHTML = 'pale words <span>7</span> <input id=unnamed>'; " \
            "document.querySelector('main').append(p); }"
    await page.evaluate(probe)
    problems = await axe_problems(page)
    assert sorted(p.split(":")[0] for p in problems) == ["color-contrast (serious)", "contrast 2.32", "label (critical)"]
    assert any(p.startswith("contrast 2.32: SPAN") for p in problems), problems
    assert any(p.startswith("label (critical)") and p.endswith("#unnamed") for p in problems), problems
    await page.evaluate("document.getElementById('probe').remove()")
    await page.keyboard.press("Tab")  # the keyboard's first stop is the skip link, then the sections
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Tickets"
    await shot(page, tmp_path, "02-tickets")

    # find the ticket: no validation yet
    await page.get_by_label("Search by").select_option("traveller")
    await page.get_by_label("Id").fill("trav-browser")
    await page.get_by_role("button", name="Search").click()
    await page.get_by_role("link", name=ticket_id).wait_for()
    await shot(page, tmp_path, "02-tickets-found")
    await page.get_by_role("link", name=ticket_id).click()
    await page.get_by_role("heading", level=1, name=f"Ticket {ticket_id}").wait_for()
    facts = await page.locator("dl.facts").first.inner_text()  # state, validity, zones, holder
    for fact in ("State\nactive: usable", "Valid from", "Valid until", "Zones\nA, B", "Holder\ntrav-browser"):
        assert fact in facts, (fact, facts)
    assert "Validation" not in await timeline_text(page)

    # the agent scans it (accepted, then passback) and syncs: the validations are on the page
    first = await agent.handle_scan(barcode.encode())
    second = await agent.handle_scan(barcode.encode())
    assert (first.event_result, second.event_result) == (0, 8)
    await agent.syncer.upload_pending()
    # an inspector's handheld checks it too and syncs: its inspection is on the timeline, with the device
    handheld = make_agent(origin, device_id="handheld-7", entity="ins1", mode="inspection")
    await handheld.syncer.sync_once()
    assert (await handheld.handle_scan(barcode.encode())).event_result == 0
    await handheld.syncer.upload_pending()
    await page.reload()
    story = await timeline_text(page)
    assert story.count("Validation") == 2 and story.count("Inspection") == 1
    assert "0 · accepted" in story and "8 · passback: used again too soon" in story
    inspection = await page.locator("table.timeline tr", has_text="Inspection").inner_text()
    assert "handheld-7" in inspection and "posted by ins1" in inspection
    assert await page.locator("svg.qr").count() == 1
    await shot(page, tmp_path, "03-ticket-validated")

    # revoke it from the page, with a reason
    await page.get_by_label("Reason").last.fill("phone reported stolen")
    await page.get_by_role("button", name="Revoke").click()
    await page.get_by_text("Ticket revoked.").wait_for()
    assert "revoked" in await page.locator("h1").inner_text()
    assert "admin: “phone reported stolen”" in await timeline_text(page)
    await shot(page, tmp_path, "04-ticket-revoked")

    # the deny list has it, with who and why
    await page.get_by_role("navigation", name="Sections").get_by_role("link", name="Deny list").click()
    row = page.locator("tbody tr", has_text=ticket_id)
    assert await row.count() == 1
    row_text = await row.inner_text()
    assert "revoke: “phone reported stolen”" in row_text and "admin" in row_text and "in force" in row_text
    await shot(page, tmp_path, "05-deny-list")

    # the agent, after its next sync, refuses the ticket: result 7, on the page too
    await agent.syncer.refresh_feeds()
    refused = await agent.handle_scan(barcode.encode())
    assert refused.event_result == 7, refused.event_reason
    await agent.syncer.upload_pending()
    await page.goto(origin + f"/console/tickets/{ticket_id}")
    assert "7 · on the deny list" in await timeline_text(page)
    await page.locator("table.timeline").screenshot(path=str(tmp_path / "06-ticket-timeline.png"))

    await page.get_by_role("link", name="Activity").click()
    await page.get_by_role("heading", name="Validations per minute, by result").wait_for()
    assert await page.locator("svg.chart rect").count() >= 3  # results 0, 7 and 8 this minute (or two minutes)
    await shot(page, tmp_path, "07-activity")

    # the fleet: the devices' state reports, one device silent for an hour
    reported = dict(depth=0, alarms=[], clockSkewSeconds=0.3)
    assert (await backoffice_of.post("/device/state", device_state(**reported), role="val")).status == 200
    alarm = [{"kind": "clock-jump", "message": "clock moved 400 s"}]
    assert (await backoffice_of.post("/device/state", device_state(depth=14, alarms=alarm), role="ins")).status == 200
    store = server_store(console_server)
    try:
        now = datetime.now(timezone.utc)
        store.report_device(DeviceReport("val2", now - timedelta(hours=1), "1.3.9", 7, 0,
                                         json.dumps(device_state(version="1.3.9", depth=7))))
        store.report_device(DeviceReport("4321:val-of-4321", now, "2.0.1", 0, 0,
                                         json.dumps(device_state(version="2.0.1", clockSkewSeconds=-71.5))))
    finally:
        store.close()
    await page.get_by_role("navigation", name="Sections").get_by_role("link", name="Fleet").click()
    silent = await page.locator("tbody tr", has_text="val2").inner_text()
    assert "(silent)" in silent and "60 min ago" in silent
    assert "clock-jump" in await page.locator("tbody tr", has_text="ins1").inner_text()
    assert "participant 4321" in await page.locator("tbody tr", has_text="val-of-4321").inner_text()
    await shot(page, tmp_path, "11-fleet")
    await page.get_by_role("link", name="val1").click()
    await page.get_by_role("heading", name="Recent events").wait_for()
    assert "7 · on the deny list" in await page.locator("section", has_text="Recent events").inner_text()
    assert await page.locator("section", has_text="State history").locator("tbody tr").count() == 1
    await shot(page, tmp_path, "12-device")
    await page.get_by_role("navigation", name="Sections").get_by_role("link", name="Deny list").click()
    assert "Devices without it" in await page.locator("thead").inner_text()
    await check_page(page, ZONE, "deny list with the devices without an entry")

    # with the keyboard alone: Tab to a form's reason, type it, Tab to its button, Enter
    await page.goto(origin + f"/console/tickets/{other_id}")
    for action, done in (("freeze", "Ticket frozen."), ("thaw", "Ticket thawed.")):
        await tab_until(page, f"e => e.id === 'reason-{action}'")
        await page.keyboard.type(f"{action} with the keyboard")
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent") == action.capitalize()
        await page.keyboard.press("Enter")
        await page.get_by_text(done).wait_for()
    assert "admin: “thaw with the keyboard”" in await timeline_text(page)
    assert (await backoffice_of.get(f"/ticket/{other_id}", role="admin")).body["state"] == "active"

    # a form without its CSRF token does nothing
    freeze = page.locator("form", has=page.get_by_role("button", name="Freeze"))
    await freeze.locator("input[name=csrf]").evaluate("field => field.remove()")
    await freeze.get_by_label("Reason").fill("no token in this form")
    await freeze.get_by_role("button", name="Freeze").click()
    await page.get_by_text("security token (CSRF) was missing or wrong").wait_for()
    await shot(page, tmp_path, "08-csrf-refused")
    assert (await backoffice_of.get(f"/ticket/{other_id}", role="admin")).body["state"] == "active"

    # on a phone (every page above was checked at a phone's width too)
    await page.set_viewport_size(PHONE)
    await page.goto(origin + f"/console/tickets/{ticket_id}")
    await shot(page, tmp_path, "09-ticket-on-a-phone")
    await page.set_viewport_size(DESKTOP)

    # sign out: the pages ask for a sign-in again
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_text("You are signed out.").wait_for()
    await check_page(page, ZONE, "signed out")
    await page.goto(origin + "/console/deny-list")
    assert page.url.startswith(origin + "/console/login")

    # a support user sees the buttons but cannot press them
    await sign_in(page, origin, "support1")
    await page.goto(origin + f"/console/tickets/{other_id}")
    for name in ("Freeze", "Refund", "Revoke"):
        button = page.get_by_role("button", name=name)
        assert await button.is_visible() and await button.is_disabled(), name
    await page.get_by_text("can look but not change").wait_for()
    await shot(page, tmp_path, "10-support-read-only")
    assert (await backoffice_of.get(f"/ticket/{other_id}", role="admin")).body["state"] == "active"
    assert_all_from(fetched, origin)
    for name in ("01-login-refused", "02-tickets", "02-tickets-found", "03-ticket-validated", "04-ticket-revoked",
                 "05-deny-list", "06-ticket-timeline", "07-activity", "08-csrf-refused", "09-ticket-on-a-phone",
                 "10-support-read-only", "11-fleet", "12-device"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000, name


async def sync(backoffice: Any, origin: str, integration: int, key: tuple[str, str], sync_id: str,
               employees: list[dict[str, Any]]) -> int:
    """An HR sync as the employer's HR platform sends it (B2B API, HTTP Basic with the API key)."""
    auth = base64.b64encode(":".join(key).encode()).decode()
    async with backoffice.session.post(f"{origin}/b2b/hr-integrations/{integration}/sync",
                                       json={"syncId": sync_id, "employees": employees},
                                       headers={"Authorization": f"Basic {auth}"}) as reply:
        return reply.status


async def test_an_operator_sees_the_employers_and_retries_a_failed_webhook(chromium, fetched, console_server,
                                                                         backoffice_of, tmp_path):
    origin = console_server.origin
    store = server_store(console_server)
    b2b = B2BStore(store.db)
    receiver = Receiver(fail=1)  # the employer's receiver: down for the first request
    try:
        now = datetime.now(timezone.utc)
        fare = {"amount": 49.0, "currency": "EUR", "vatAmount": 3.21, "vatPercent": 7.0}
        acme = b2b.add_company("ACME Logistics", Product("job-ticket", ("A", "B"), ("bus", "tram"), fare), Plan(), now)
        b2b.add_company("Nordhafen Hospital", Product("job-ticket", ("A",), ("bus",), fare),
                        Plan("split-pay-plan", 29.0), now)
        integration = b2b.add_integration(acme, "Personio", now)
        key, secret = keys.new_key(acme, list(PERMISSIONS), now, name="HR platform")
        b2b.add_api_key(key)
        next_month = (date.today().replace(day=1) + timedelta(days=32)).replace(day=1)
        staff = [row("E-101", "Anna", "Müller"), row("E-102", "Bo", "Berg"),
                 row("E-104", "Dana", "Ode", absences=[{"startDate": next_month.isoformat(), "endDate": None}]),
                 row("E-103", "Cem", "Çelik")]
        auth = (key.key_id, secret)
        assert await sync(backoffice_of, origin, integration, auth, "2026-11-roster-1", staff) == 204
        bad = [{**staff[0], "email": "anna at example"}, *staff[1:]]
        assert await sync(backoffice_of, origin, integration, auth, "2026-11-roster-2", bad) == 422
        await run_rollover(console_server.data_dir, datetime.now(timezone.utc))  # this month's tickets
        # the webhook endpoints: the receiver (down for its first request) and one that never answers
        receiver.secret = webhooks.new_secret()
        endpoint = b2b.add_endpoint(acme, await receiver.start(), [webhooks.SUBSCRIPTION_CHANGED], receiver.secret,
                                    now)
        b2b.add_endpoint(acme, f"http://127.0.0.1:{free_port()}/hooks", [webhooks.SUBSCRIPTION_CHANGED],
                         webhooks.new_secret(), now)
        assert await sync(backoffice_of, origin, integration, auth, "2026-11-roster-3", staff[:3]) == 204  # Cem left
        await until(lambda: receiver.statuses == [500])  # the sender tried at once; the next try is 15 s or more away
        [delivery] = b2b.deliveries(endpoint)
        assert delivery.status == "pending" and delivery.next_attempt_at > datetime.now(timezone.utc)

        page = await chromium.new_page()
        await sign_in(page, origin, "admin")
        await page.get_by_role("navigation", name="Sections").get_by_role("link", name="Employers").click()
        await page.get_by_role("heading", name="Employers").wait_for()
        assert "Nordhafen Hospital" in await page.locator("tbody").inner_text()
        await shot(page, tmp_path, "13-employers")
        await page.get_by_role("link", name="ACME Logistics").click()
        await page.get_by_role("heading", name="HR integrations").wait_for()
        integrations = await page.locator("section", has_text="HR integrations").inner_text()
        assert "SYNCED" in integrations and "2026-11-roster-3" in integrations
        await shot(page, tmp_path, "14-company")
        await page.get_by_role("link", name="All 4 employees").click()
        employees = await page.locator("tbody").inner_text()
        assert "scheduled-pause" in employees and "cancelled" in employees and "active" in employees
        await shot(page, tmp_path, "15-employees")
        await page.get_by_role("link", name="ACME Logistics").click()
        await page.get_by_role("link", name="Personio").click()
        runs = await page.locator("section", has_text="Sync runs").locator("tbody tr").all_inner_texts()
        assert [r.split("\t")[1].strip() for r in runs] == ["applied", "refused", "applied"]
        assert "employees[0].email" in runs[1]
        await shot(page, tmp_path, "16-sync-runs")

        # the delivery log: the failed attempt, retried now from the page, then delivered
        await page.get_by_role("link", name="ACME Logistics").click()
        await page.get_by_role("link", name=receiver_url_of(b2b, endpoint)).click()
        entry = page.locator("tbody tr", has_text=delivery.event_id)
        assert "HTTP 500" in await entry.inner_text()
        await shot(page, tmp_path, "17-webhook-log")
        await entry.get_by_role("button", name="Retry now").click()
        await page.get_by_text("The delivery is due now").wait_for()
        await until(lambda: receiver.statuses == [500, 204])
        await page.reload()
        assert "delivered" in await page.locator("tbody tr", has_text=delivery.event_id).inner_text()
        await shot(page, tmp_path, "18-webhook-retried")

        await page.set_viewport_size(PHONE)  # every page above was checked at a phone's width too
        company = f"/console/employers/{acme}"
        await page.goto(origin + f"{company}/employees")
        await shot(page, tmp_path, "19-employees-on-a-phone")
        await page.set_viewport_size(DESKTOP)

        # a support user sees the retry button of the endpoint that never answers, but cannot press it
        await page.get_by_role("button", name="Sign out").click()
        await sign_in(page, origin, "support1")
        await page.goto(origin + company)
        await page.get_by_role("link", name="/hooks").click()
        button = page.get_by_role("button", name="Retry now")
        assert await button.is_visible() and await button.is_disabled()
        await shot(page, tmp_path, "20-webhook-support-read-only")
    finally:
        await receiver.stop()
        store.close()
    assert_all_from(fetched, origin)
    for name in ("13-employers", "14-company", "15-employees", "16-sync-runs", "17-webhook-log", "18-webhook-retried",
                 "19-employees-on-a-phone", "20-webhook-support-read-only"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000, name


def receiver_url_of(b2b: B2BStore, endpoint: int) -> str:
    return b2b.get_endpoint(endpoint).url  # type: ignore[union-attr]


# Where a time's UTC text is drawn, and whether it is really seen there (the topmost element at
# its middle), or an empty list when it is hidden (a clipped box of one pixel).
UTC_SHOWN = """e => { const u = e.querySelector('.utc'), r = u.getBoundingClientRect();
    if (r.width <= 1 || r.height <= 1) return [];
    const top = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
    return [u.textContent.trim(), u.contains(top), r.bottom <= window.innerHeight && r.right <= window.innerWidth]; }"""


def utc_words(datetime_attr: str) -> str:
    return "(" + datetime_attr.replace("T", " ").removesuffix("Z") + " UTC)"


async def test_a_keyboard_user_reads_each_time_in_utc(chromium, console_server, backoffice_of, tmp_path):
    """The UTC time of a time is not only a mouse's: Tab to the time and it shows below it (in a
    table scrolled sideways on a phone too), and it is in the name Chromium gives the time for
    screen readers; hovering shows it likewise; otherwise the lists show one line a time."""
    origin = console_server.origin
    ticket_id, _ = await issue(backoffice_of, "trav-times")
    page = await chromium.new_page()
    await sign_in(page, origin, "admin")
    await page.get_by_role("heading", name="Tickets").wait_for()
    for size, where in ((DESKTOP, "desktop"), (PHONE, "phone")):
        await page.set_viewport_size(size)
        for path, inside in ((f"/console/tickets/{ticket_id}", "dl.facts"), ("/console/tickets", ".scroll")):
            await page.goto(origin + path)
            times = page.locator(f"{inside} time")
            assert await times.count() >= 2
            for i in range(await times.count()):
                assert await times.nth(i).evaluate(UTC_SHOWN) == [], (where, path)  # compact until asked
            await tab_until(page, f"e => e.tagName === 'TIME' && e.closest('{inside}')")
            focused = (await page.evaluate_handle("document.activeElement")).as_element()
            words = utc_words(await focused.get_attribute("datetime"))
            for _ in range(40):  # Chromium does not scroll a half-shown focused element into view: the arrow keys do
                if (await focused.evaluate(UTC_SHOWN))[1:] == [True, True]:
                    break
                await page.keyboard.press("ArrowRight")
            assert await focused.evaluate("e => e === document.activeElement"), (where, path)
            assert await focused.evaluate(UTC_SHOWN) == [words, True, True], (where, path)
            assert (await focused_name(page)).endswith(words), (where, path)
            await page.screenshot(path=str(tmp_path / f"21-time-focused-{where}-{path.count('/')}.png"))
            await focused.evaluate("e => e.blur()")
            assert await focused.evaluate(UTC_SHOWN) == [], (where, path)
            if size is DESKTOP:  # a phone has no pointer to hover with
                second = times.nth(1)
                await second.hover()
                assert await second.evaluate(UTC_SHOWN) == [utc_words(await second.get_attribute("datetime")), True,
                                                            True], path
                await page.mouse.move(0, 0)
                assert await second.evaluate(UTC_SHOWN) == [], path
