"""The operator console over real HTTP on 127.0.0.1: sign-in and sessions, CSRF, roles, the
ticket buttons (the Ticket API's state machine, with who and why), search, the deny list,
activity, paging, time zones, errors as pages. The browser test is tests/e2e/test_console_browser.py."""
from __future__ import annotations

import re
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from mtb.timeutil import format_extended
from server import cli
from server.app import app_from_data_dir
from server.thread import ServerThread

from .conftest import PASSWORD, Deployment, make_data_dir
from .console_client import ConsoleClient, assert_times_in_zone, client_session


@pytest.fixture(scope="session")
def support_credential(deployment) -> str:
    cli.add_credential(deployment.data_dir, "support1", "support", PASSWORD, replace=True)
    return "support1"


@pytest.fixture
async def clients(deployment, support_credential) -> Any:
    """``await clients("admin")``: a signed-in client of the session deployment (None: not signed in)."""
    sessions = []

    async def make(user: str | None = "admin", origin: str | None = None) -> ConsoleClient:
        session = client_session()
        sessions.append(session)
        client = ConsoleClient(origin or deployment.server.origin, session)
        if user is not None:
            page = await client.sign_in(user)
            assert page.status == 303, page
        return client

    yield make
    for session in sessions:
        await session.close()


def ticket_path(ticket_id: str) -> str:
    return f"/console/tickets/{ticket_id}"


async def act(client: ConsoleClient, ticket_id: str, action: str, reason: str = "customer called") -> Any:
    return await client.submit(ticket_path(ticket_id), ticket_path(ticket_id) + "/action",
                               {"action": action, "reason": reason})


def api_login_status(deployment: Deployment, entity: str) -> int:
    """The status of ``GET /auth/{entity}`` with the right password."""
    request = urllib.request.Request(deployment.url(f"/auth/{entity}"), headers={"Authorization": deployment.basic(entity)})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def rows_of(deployment: Deployment, sql: str, params: tuple = ()) -> list[tuple]:
    return deployment.rows(sql, params)


# --- sign-in, sessions --------------------------------------------------------------------------

async def test_sign_in_gives_a_strict_httponly_cookie_and_sign_out_ends_the_session(clients, deployment):
    client = await clients(None)
    assert (await client.get("/console/tickets")).location == "/console/login?next=/console/tickets"
    page = await client.sign_in("admin")
    assert page.status == 303 and page.location == "/console/tickets"
    cookie = page.headers.getall("Set-Cookie")
    session_cookie = next(c for c in cookie if c.startswith("mtb_console="))
    assert "HttpOnly" in session_cookie and "SameSite=Strict" in session_cookie and "Path=/console" in session_cookie
    assert "Secure" not in session_cookie  # plain HTTP here; the TLS test below sees Secure
    token = client.session_cookie()
    assert token and len(token) >= 40
    tickets = await client.get("/console/tickets")
    assert tickets.status == 200 and "admin" in tickets.text and "Sign out" in tickets.text
    assert tickets.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in tickets.headers["Content-Security-Policy"]
    # the database keeps a hash of the token, never the token
    stored = rows_of(deployment, "SELECT token_hash FROM console_sessions WHERE entity_id = 'admin'")
    assert stored and all(token not in row[0] for row in stored)

    bye = await client.post("/console/logout", {"csrf": tickets.csrf()})
    assert bye.status == 303 and bye.location == "/console/login?notice=bye"
    again = await client.get("/console/tickets", cookies={"mtb_console": token})  # the old cookie, replayed
    assert again.status == 303 and again.location.startswith("/console/login")


async def test_a_wrong_password_or_a_non_console_role_is_refused(clients):
    client = await clients(None)
    page = await client.sign_in("admin", "not the password")
    assert page.status == 401 and "Wrong user name or password" in page.text
    assert client.session_cookie() is None
    page = await client.sign_in("nobody-like-this", PASSWORD)
    assert page.status == 401
    page = await client.sign_in("pos1", PASSWORD)  # a right password, but a seller's credential
    assert page.status == 403 and "cannot use the console" in page.text
    assert client.session_cookie() is None


async def test_failed_sign_ins_hit_the_same_login_limit_as_the_api(make_server):
    deployment = make_server(login_limit={"failures": 3, "window_seconds": 60, "block_seconds": 60})
    async with client_session() as session:
        client = ConsoleClient(deployment.server.origin, session)
        statuses = [(await client.sign_in("admin", f"guess {i}")).status for i in range(4)]
        assert statuses == [401, 401, 401, 429]
        blocked = await client.sign_in("admin", PASSWORD)  # even the right password, from this address
        assert blocked.status == 429 and int(blocked.headers["Retry-After"]) > 0
        assert "Too many failed sign-ins for this name" in blocked.text
    assert api_login_status(deployment, "admin") == 429  # the API's Basic login too: one limit for both ways in


async def test_sessions_live_in_the_database_so_every_server_process_knows_them(clients, deployment):
    """A second server on the same database (another process would do the same) honours the
    session the first one started; signing out on the second ends it on the first."""
    second = ServerThread(app_from_data_dir(deployment.data_dir)).start()
    try:
        client = await clients("admin")
        token = client.session_cookie()
        other = await clients(None, origin=second.origin)
        page = await other.get("/console/tickets", cookies={"mtb_console": token})
        assert page.status == 200 and "Sign out" in page.text
        bye = await other.post("/console/logout", {"csrf": page.csrf()}, cookies={"mtb_console": token})
        assert bye.status == 303
        assert (await client.get("/console/tickets")).status == 303
    finally:
        second.stop()


async def test_a_removed_credential_or_an_expired_session_is_signed_out(clients, deployment):
    cli.add_credential(deployment.data_dir, "temp-admin", "admin", PASSWORD, replace=True)
    client = await clients("temp-admin")
    assert (await client.get("/console/deny-list")).status == 200
    cli.add_credential(deployment.data_dir, "temp-admin", "pos", PASSWORD, replace=True)  # no console role now
    assert (await client.get("/console/deny-list")).status == 303

    client = await clients("admin")
    token_hash = rows_of(deployment, "SELECT token_hash FROM console_sessions ORDER BY created_at DESC")[0][0]
    store = deployment.store()
    try:
        with store.db.transaction() as tx:
            tx.execute("UPDATE console_sessions SET expires_at = ? WHERE token_hash = ?",
                       (format_extended(datetime.now(timezone.utc) - timedelta(seconds=1)), token_hash))
    finally:
        store.close()
    page = await client.get("/console/activity")
    assert page.status == 303 and "notice=expired" in page.location


async def test_after_sign_in_only_a_page_of_this_console(clients):
    client = await clients(None)
    assert (await client.sign_in("admin", next="/console/deny-list?kind=ticket")).location == "/console/deny-list?kind=ticket"
    for evil in ("//evil.example/console/", "https://evil.example/console/", "/api/v1/ticket", "/console\\..\\x"):
        client = await clients(None)
        assert (await client.sign_in("admin", next=evil)).location == "/console/tickets", evil


def self_signed(tmp_path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made in the test (no key in the repo)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


async def test_the_session_cookie_is_secure_over_tls(tmp_path):
    import ssl

    import aiohttp

    from server.app import start
    from server.tls import server_ssl_context

    cert_file, key_file = self_signed(tmp_path)
    data_dir = make_data_dir(tmp_path / "data")
    running = await start(data_dir, ssl_context=server_ssl_context(cert_file, key_file))
    try:
        trust = ssl.create_default_context(cafile=str(cert_file))
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                         connector=aiohttp.TCPConnector(ssl=trust)) as session:
            client = ConsoleClient(f"https://127.0.0.1:{running.port}", session)
            page = await client.sign_in("admin")
            assert page.status == 303
            cookie = next(c for c in page.headers.getall("Set-Cookie") if c.startswith("mtb_console="))
            assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
            assert (await client.get("/console/tickets")).status == 200
    finally:
        await running.close()


# --- CSRF and roles -----------------------------------------------------------------------------

async def test_forms_without_their_csrf_token_do_nothing(clients, api):
    ticket_id = await api.ticket_id("trav-csrf")
    anonymous = await clients(None)
    await anonymous.get("/console/login")
    page = await anonymous.post("/console/login", {"user": "admin", "password": PASSWORD})
    assert page.status == 403 and "CSRF" in page.text and anonymous.session_cookie() is None
    page = await anonymous.post("/console/login", {"csrf": "forged", "user": "admin", "password": PASSWORD})
    assert page.status == 403

    client = await clients("admin")
    path = ticket_path(ticket_id) + "/action"
    for form in ({"action": "revoke", "reason": "no token"}, {"action": "revoke", "reason": "bad", "csrf": "x" * 43}):
        refused = await client.post(path, form)
        assert refused.status == 403 and "CSRF" in refused.text
    assert (await client.post("/console/logout", {})).status == 403
    # another site's form, even with the right token, is refused by its Origin
    good = (await client.get(ticket_path(ticket_id))).csrf()
    refused = await client.post(path, {"csrf": good, "action": "revoke", "reason": "cross-site"},
                                headers={"Origin": "http://evil.example"})
    assert refused.status == 403
    assert (await api.get(f"/ticket/{ticket_id}", role="admin")).body["state"] == "active"
    assert (await client.get("/console/tickets")).status == 200  # still signed in


def changing_routes() -> list[tuple[str, str, str]]:
    """``(method, path, access)`` of every console route that changes something (not GET or
    HEAD), each path part filled in with "1"."""
    from server.console import employers
    from server.console.app import PAGES
    from server.console.page import ACCESS_ATTR, READ

    return [(route.method, "/console" + re.sub(r"\{[^}]+\}", "1", route.path),
             getattr(route.handler, ACCESS_ATTR, READ))
            for module in (*PAGES, employers) for route in module.routes if route.method not in ("GET", "HEAD")]


async def test_every_route_that_changes_something_needs_the_csrf_token_and_its_role(clients):
    from server.console.page import ADMIN

    routes = changing_routes()
    assert {(method, path) for method, path, _ in routes} == {
        ("POST", "/console/login"), ("POST", "/console/logout"), ("POST", "/console/tickets/1/action"),
        ("POST", "/console/employers/1/webhooks/1/deliveries/1/retry"),
        ("POST", "/console/employers/1/webhooks/1/enable")}
    admin = await clients("admin")
    for method, path, _ in routes:
        for form in ({}, {"csrf": "x" * 43}):  # none, or a wrong one: refused before the handler runs
            page = await admin.request(method, path, data=form)
            assert page.status == 403 and "CSRF" in page.text, (method, path, form)
    assert (await admin.get("/console/tickets")).status == 200  # still signed in
    support = await clients("support1")
    token = (await support.get("/console/tickets")).csrf()
    admin_only = [(method, path) for method, path, level in routes if level == ADMIN]
    assert len(admin_only) == 3
    for method, path in admin_only:  # the right token, the wrong role
        page = await support.request(method, path, data={"csrf": token})
        assert page.status == 403 and "may look but not change" in page.text, (method, path)


async def test_support_sees_everything_but_cannot_press_the_buttons(clients, api, deployment):
    ticket_id = await api.ticket_id("trav-support")
    support = await clients("support1")
    page = await support.get(ticket_path(ticket_id))
    assert page.status == 200 and "read-only" in page.text
    assert page.text.count("<fieldset disabled>") == 3  # freeze, refund, revoke: shown, not pressable
    refused = await support.post(ticket_path(ticket_id) + "/action",
                                 {"csrf": page.csrf(), "action": "revoke", "reason": "support tries"})
    assert refused.status == 403 and "may look but not change" in refused.text
    assert (await api.get(f"/ticket/{ticket_id}", role="admin")).body["state"] == "active"
    for path in ("/console/tickets", "/console/deny-list", "/console/activity"):
        assert (await support.get(path)).status == 200
    assert api_login_status(deployment, "support1") == 403  # a console-only credential gets no API token


# --- the ticket buttons -------------------------------------------------------------------------

async def test_revoke_from_the_console_runs_the_state_machine_with_who_and_why(clients, api):
    reply = await api.issue("trav-revoke", issueMtb=True)
    ticket_id = reply.body["ticketIds"][0]
    client = await clients("admin")
    before = await api.get("/blacklist?blacklistEntryId=0&limit=10000", role="val")
    done = await act(client, ticket_id, "revoke", "phone stolen <b>report 42</b>")
    assert done.status == 303 and done.location == f"/console/tickets/{ticket_id}?done=revoke"
    page = await client.get(done.location)
    assert "Ticket revoked." in page.text and 'state-revoked' in page.text
    assert "phone stolen &lt;b&gt;report 42&lt;/b&gt;" in page.text  # escaped, never markup
    assert re.search(r"Revoke</td>\s*<td>active &rarr; revoked</td>", page.text)
    assert (await api.get(f"/ticket/{ticket_id}", role="admin")).body["state"] == "revoked"
    after = await api.get("/blacklist?blacklistEntryId=0&limit=10000", role="val")
    [entry] = [e for e in after.body if e not in before.body]
    assert entry["ticketId"] == ticket_id

    deny = await client.get("/console/deny-list?kind=ticket&status=in-force")
    row = re.search(rf"<tr>\s*<td>{entry['blacklistEntryId']}</td>(.*?)</tr>", deny.text, re.S)
    assert row, deny.text[:3000]
    assert ticket_id in row.group(1) and "revoke: &ldquo;phone stolen" in row.group(1)
    assert "<td>admin</td>" in row.group(1) and "in force" in row.group(1)

    again = await act(client, ticket_id, "refund", "too late")  # revoked is terminal: the machine says 409
    assert again.status == 409 and "Not done" in again.text


async def test_freeze_thaw_and_refund_from_the_console(clients, api):
    ticket_id = await api.ticket_id("trav-freeze")
    client = await clients("admin")
    assert (await act(client, ticket_id, "freeze", "lost phone")).status == 303
    assert (await api.get(f"/ticket/{ticket_id}/active", role="admin")).body is False
    page = await client.get(ticket_path(ticket_id))
    assert 'value="thaw"' in page.text and 'value="freeze"' not in page.text
    assert (await act(client, ticket_id, "thaw", "phone found")).status == 303
    assert (await api.get(f"/ticket/{ticket_id}/active", role="admin")).body is True
    assert (await act(client, ticket_id, "refund", "trip cancelled")).status == 303
    status = (await api.get(f"/ticket/{ticket_id}/refundStatus", role="admin")).body
    assert status["refunded"] is True
    page = await client.get(ticket_path(ticket_id))
    for words in ("lost phone", "phone found", "trip cancelled"):
        assert f"admin: &ldquo;{words}&rdquo;" in page.text
    assert "No action is possible on a refunded ticket" in page.text


@pytest.mark.parametrize("reason", ["", "  ", "ab", "x" * 501, "bell\x07", "zero\u200bwidth"])
async def test_a_button_needs_a_real_reason(clients, api, reason):
    ticket_id = await api.ticket_id("trav-reason")
    client = await clients("admin")
    page = await act(client, ticket_id, "revoke", reason)
    assert page.status == 422 and "Give a reason" in page.text
    assert (await api.get(f"/ticket/{ticket_id}", role="admin")).body["state"] == "active"


async def test_an_unknown_action_or_ticket_is_a_clear_page(clients, api):
    ticket_id = await api.ticket_id("trav-unknown")
    client = await clients("admin")
    page = await act(client, ticket_id, "recover")
    assert page.status == 400 and "Unknown action" in page.text
    page = await client.get("/console/tickets/no-such-ticket")
    assert page.status == 404 and "No ticket" in page.text and page.headers["Content-Type"].startswith("text/html")
    page = await client.get("/console/no-such-page")
    assert page.status == 404 and "no such page" in page.text


# --- ticket page, search ------------------------------------------------------------------------

async def test_the_ticket_page_shows_the_decoded_mtb_and_its_2d_code(clients, api):
    import segno

    reply = await api.issue("trav-mtb", issueMtb=True)
    ticket_id = reply.body["ticketIds"][0]
    ticket = (await api.get(f"/ticket/{ticket_id}", role="admin")).body
    client = await clients("admin")
    page = await client.get(ticket_path(ticket_id))
    assert "issuer signature valid" in page.text
    assert "<dt>Zones</dt><dd>A, B</dd>" in page.text
    assert ticket["mtb"] in page.text
    expected = segno.make(ticket["mtb"], error="l", micro=False)
    assert f'<svg role="img" viewBox="0 0 {expected.symbol_size(scale=1)[0]} ' in page.text  # exactly this MTB's code
    assert re.search(r"Issue</td>\s*<td>active</td>", page.text)


async def test_search_by_ticket_traveller_bundle_or_request_id(clients, api):
    reply = await api.issue("trav-search", requestId="req-search-1")
    ticket_id = reply.body["ticketIds"][0]
    bundle_id = reply.headers["Location"].rsplit("/", 1)[1]
    client = await clients("admin")
    assert (await client.get(f"/console/tickets?q={ticket_id}")).location == ticket_path(ticket_id)
    for by, value in (("traveller", "trav-search"), ("bundle", bundle_id), ("request", "req-search-1"),
                      ("any", "req-search-1"), ("any", bundle_id)):
        page = await client.get(f"/console/tickets?by={by}&q={value}")
        assert page.status == 200 and ticket_path(ticket_id) in page.text, (by, value)
    assert "No ticket found" in (await client.get("/console/tickets?by=traveller&q=nobody")).text
    assert (await client.get("/console/tickets?by=colour&q=x")).status == 400
    assert (await client.get("/console/tickets?q=" + "x" * 201)).status == 400


async def test_every_list_is_paged(make_server):
    deployment = make_server(console={"page_size": 5})
    from .conftest import Api

    async with client_session() as session:
        api = Api(deployment, session)
        for _ in range(7):
            await api.ticket_id("trav-paged")
        client = ConsoleClient(deployment.server.origin, session)
        assert (await client.sign_in("admin")).status == 303
        first = await client.get("/console/tickets?by=traveller&q=trav-paged")
        assert first.text.count('href="/console/tickets/') == 5 and "1&ndash;5 of 7" in first.text
        assert 'rel="next"' in first.text and 'rel="prev"' not in first.text
        second = await client.get("/console/tickets?by=traveller&q=trav-paged&page=2")
        assert second.text.count('href="/console/tickets/') == 2 and "6&ndash;7 of 7" in second.text
        assert (await client.get("/console/tickets?page=0")).status == 400
        assert (await client.get("/console/tickets?page=abc")).status == 400
        ticket_id = (await api.ticket_id("trav-timeline"))
        for action in ("freeze", "thaw", "freeze", "thaw", "freeze", "thaw"):
            assert (await act(client, ticket_id, action, "paging the timeline")).status == 303
        timeline = await client.get(ticket_path(ticket_id))
        assert "1&ndash;5 of 7" in timeline.text
        deny = await client.get("/console/deny-list")
        assert "1&ndash;5 of 6" in deny.text and 'rel="next"' in deny.text


async def test_times_are_in_the_operators_zone_with_utc_on_hover_and_focus(make_server):
    deployment = make_server(console={"timezone": "Europe/Stockholm"})
    from .conftest import Api

    async with client_session() as session:
        ticket_id = await Api(deployment, session).ticket_id("trav-tz")
        client = ConsoleClient(deployment.server.origin, session)
        await client.sign_in("admin")
        page = await client.get(ticket_path(ticket_id))
    assert assert_times_in_zone(page.text, "Europe/Stockholm")


def test_an_unknown_time_zone_is_refused_at_start(tmp_path):
    with pytest.raises(ValueError, match="unknown time zone"):
        make_data_dir(tmp_path / "data", console={"timezone": "Mars/Olympus_Mons"})


# --- deny list, activity --------------------------------------------------------------------------

async def test_the_deny_list_filters_by_kind_and_status(clients, api):
    ticket_id = await api.ticket_id("trav-deny-filter")
    client = await clients("admin")
    await act(client, ticket_id, "freeze", "checking")
    await act(client, ticket_id, "thaw", "checked")
    in_force = await client.get("/console/deny-list?status=in-force")
    expired = await client.get("/console/deny-list?status=expired")
    assert "&ldquo;checking&rdquo;" in in_force.text and "&ldquo;checked&rdquo;" not in in_force.text
    assert "&ldquo;checked&rdquo;" in expired.text and "lifts" in expired.text
    assert (await client.get("/console/deny-list?kind=everything")).status == 400


async def test_the_deny_list_shows_what_each_entry_names_and_filters_by_kind(make_server):
    from server.store import DenyEntry

    from .conftest import Api

    deployment = make_server()
    now = datetime.now(timezone.utc)
    store = deployment.store()
    try:  # a traveller and a token denied as another tool would (the token CLI): no console actor
        store.add_deny(DenyEntry(now + timedelta(days=30), traveller_id="trav-fraud", reason="fraud", created_at=now))
        store.add_deny(DenyEntry(now + timedelta(days=30), token_id="tok-lost-card", reason="token revoked",
                                 created_at=now))
    finally:
        store.close()
    async with client_session() as session:
        ticket_id = await Api(deployment, session).ticket_id("trav-kinds")
        client = ConsoleClient(deployment.server.origin, session)
        await client.sign_in("admin")
        assert (await act(client, ticket_id, "revoke", "chargeback")).status == 303
        pages = {kind: (await client.get(f"/console/deny-list?kind={kind}")).text
                 for kind in ("all", "ticket", "traveller", "token")}
    names = {"ticket": ticket_id, "traveller": "trav-fraud", "token": "tok-lost-card"}
    for kind, name in names.items():
        row = re.search(rf"<tr>\s*<td>\d+</td>\s*<td>{kind}</td>(.*?)</tr>", pages["all"], re.S)
        assert row and name in row.group(1), kind
        assert name in pages[kind] and all(other not in pages[kind] for other in names.values() if other != name)
    assert "revoke: &ldquo;chargeback&rdquo;" in pages["ticket"] and "<td>admin</td>" in pages["ticket"]
    assert "<td>fraud</td>" in pages["traveller"] and "<td>—</td>" in pages["traveller"]  # nobody in the console


async def test_activity_charts_validations_by_result_and_lists_the_days_refusals(make_server, make_event):
    deployment = make_server()
    from .conftest import Api

    now = datetime.now(timezone.utc)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)  # the session's zone is UTC
    when = format_extended(max(now - timedelta(minutes=2), midnight))  # today, and in the last hour
    events = [make_event(f"T-act-{i}", f"act-{i}", time=when, eventResult=code, eventReason="r")
              for i, code in enumerate([0, 0, 0, 7, 7, 8])]
    events.append(make_event("T-act-ins", "act-ins", time=when, eventType="inspection", eventResult=3))
    async with client_session() as session:
        api = Api(deployment, session)
        assert (await api.post("/validation", events[:6], role="val")).status == 200  # BoB: no body
        assert (await api.post("/inspection", events[6:], role="ins")).status == 200  # BoB: no body
        client = ConsoleClient(deployment.server.origin, session)
        await client.sign_in("admin")
        page = await client.get("/console/activity?hours=1")
        assert (await client.get("/console/activity?hours=5")).status == 400
    assert "6 validations from" in page.text
    bars = re.findall(r'<rect x="[^"]+" y="[^"]+" width="[^"]+" height="([^"]+)" fill="[^"]+">'
                      r"<title>[^:]+:\d\d: (\d+) × ([^<]+)</title>", page.text)
    assert sorted((int(n), what) for _, n, what in bars) == [
        (1, "8 · passback: used again too soon"), (2, "7 · on the deny list"), (3, "0 · accepted")]
    heights = {what: float(h) for h, _, what in bars}
    assert heights["0 · accepted"] == pytest.approx(3 * heights["8 · passback: used again too soon"])
    refusals = page.text[page.text.index("Refusals today"):]
    assert re.search(r"7 · on the deny list</span>\s*</td><td>validation</td><td>2</td>", refusals)
    assert re.search(r"3 · not valid at this time</span>\s*</td><td>inspection</td><td>1</td>", refusals)
    assert "accepted</span>" not in refusals


# --- assets -------------------------------------------------------------------------------------

async def test_assets_come_from_this_server_and_nothing_from_elsewhere(clients):
    client = await clients("admin")
    css = await client.get("/console/static/console.css")
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")
    cached = await client.get("/console/static/console.css", headers={"If-None-Match": css.headers["ETag"]})
    assert cached.status == 304
    assert (await client.get("/console/static/../config.json")).status == 404
    assert (await client.get("/console/static/nothing.css")).status == 404
    for path in ("/console/tickets", "/console/deny-list", "/console/activity", "/console/login"):
        page = await client.get(path)
        assert not re.search(r'(src|href)="(https?:)?//', page.text), path
        assert "<script" not in page.text
