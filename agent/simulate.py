"""Simulator mode: the bundled server and three devices on loopback, with simulated passengers.

``python -m agent simulate`` (what ``make demo`` and CI run) starts ``python -m server`` as its
own process on 127.0.0.1, issues tickets through its HTTP API as a sales system would, and runs
a bus validator driving the sample route, a platform validator and an inspector's handheld,
each a real Agent with its own SQLite cache, syncing over HTTP. Passengers hold valid, expired,
wrong-zone, revoked, passed-back, device-signed, screenshot and forged tickets. The simulator
prints what each device decided, a summary table, and exits 0 only when every expected
outcome happened and the server holds every event exactly once.

It talks to the server only over HTTP and its CLI (the agent never imports the server).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from hardware import SimulatedFeedback, SimulatedReader, SimulatedRoute

import mtb
from mtb import keys, signer
from .config import AgentConfig
from .messages import RESULT_NAMES
from .runtime import Agent, build_agent, close_agent
from .stops import SAMPLE_STOPS as STOPS, load_stops
from .sync import basic_auth
from mtb.timeutil import utcnow

ROOT = Path(__file__).resolve().parents[1]  # the checkout, or site-packages once installed
PRODUCTS = STOPS.parent / "products.json"  # the sample network's product catalogue
ROUTE = ["CEN", "ODP", "KTH", "UNI", "BER", "DAN", "MOR"]  # bus 17, Centralstationen -> Mörby
DEVICES = {  # device id: (role, mode, location)
    "bus-17": ("val", "validation", "vehicle"),
    "platform-odp": ("val", "validation", "platform"),
    "platform-odp-2": ("val", "validation", "platform"),  # the next gate of the same platform
    "handheld-7": ("ins", "inspection", "handheld"),
}
log = logging.getLogger("simulate")


@dataclass
class Passenger:
    label: str
    device: str
    barcode: str
    expected: int
    at_stop: str | None = None  # the bus drives to this stop before the scan
    seen_elsewhere: bool = False  # scanned once the uses feed has brought another device's acceptance


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_cli(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "server", *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if done.returncode != 0:
        raise RuntimeError(f"python -m server {args[0]} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


class BackOffice:
    """A sales system and an operator's console: the server's HTTP API with real tokens."""

    def __init__(self, base: str, session: aiohttp.ClientSession, credentials: dict[str, str]) -> None:
        self.base, self.session, self.credentials = base, session, credentials
        self.tokens: dict[str, str] = {}

    async def token(self, entity: str) -> str:
        if entity not in self.tokens:
            headers = {"Authorization": basic_auth(entity, self.credentials[entity])}
            async with self.session.get(f"{self.base}/auth/{entity}", headers=headers) as reply:
                reply.raise_for_status()
                self.tokens[entity] = (await reply.json())["jwtCompact"]
        return self.tokens[entity]

    async def call(self, entity: str, method: str, path: str, body: Any = None) -> Any:
        headers = {"X-BoB-AuthToken": await self.token(entity)}
        async with self.session.request(method, self.base + path, json=body, headers=headers) as reply:
            data = await reply.json(content_type=None)
            if reply.status >= 400:
                raise RuntimeError(f"{method} {path}: {reply.status} {data}")
            return data

    async def issue(self, traveller: str, zones: list[str]) -> tuple[str, str]:
        """Sell a single adult ticket for the zones, as a sales system does with BoB's Product
        and Ticket APIs: product filter -> manifest -> ticket."""
        offered = await self.call("shop-1", "POST", "/product", {
            "group": {"groupType": "zone", "groupIds": zones}, "productCategoryIds": ["single"],
            "travellerCategoryIds": ["adult"]})
        manifest = await self.call("shop-1", "POST", "/manifest",
                                   {"productSelections": [{"productId": offered[0][0]["productId"]}]})
        issued = await self.call("shop-1", "POST", "/ticket", {
            "manifestMtbTemplate": manifest["manifest"], "ticketHolder": {"travellerId": traveller},
            "issueMtb": True})
        return issued["ticketIds"][0], issued["ticketBundle"]["mtb"]


class Simulation:
    def __init__(self, workdir: Path, *, verbose: bool = True) -> None:
        self.workdir = workdir
        self.verbose = verbose
        self.data = workdir / "server"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/api/v1"
        self.credentials: dict[str, str] = {}
        self.server: subprocess.Popen[bytes] | None = None
        self.agents: dict[str, Agent] = {}
        self.results: list[tuple[Passenger, int, str]] = []

    def say(self, text: str) -> None:
        if self.verbose:
            print(text, flush=True)

    # --- set-up ---------------------------------------------------------------------------------

    def deploy_server(self) -> None:
        init = server_cli("init", "--data", str(self.data), "--pid", "1234", "--name", "Demo Transit")
        shutil.copyfile(PRODUCTS, self.data / "products.json")
        self.credentials["admin"] = init["adminPassword"]
        for entity, role in [("shop-1", "pos")] + [(device, spec[0]) for device, spec in DEVICES.items()]:
            self.credentials[entity] = server_cli("credentials", "add", "--data", str(self.data), "--entity", entity,
                                                  "--role", role)["password"]
        self.server = subprocess.Popen([sys.executable, "-m", "server", "--data", str(self.data), "--host",
                                        "127.0.0.1", "--port", str(self.port)],
                                       env=dict(os.environ, PYTHONPATH=str(ROOT)),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.say(f"server: python -m server on 127.0.0.1:{self.port} (data {self.data})")

    async def wait_for_server(self, session: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{self.base}/openapi.json") as reply:
                    if reply.status == 200:
                        return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        raise RuntimeError("the server did not come up")

    def device_config(self, device: str) -> AgentConfig:
        role, mode, location = DEVICES[device]
        credentials = self.workdir / f"{device}.credentials"
        credentials.write_text(f"{device}:{self.credentials[device]}\n")
        credentials.chmod(0o600)
        return AgentConfig.model_validate({
            "device_id": device, "mode": mode, "location": location, "db": str(self.workdir / f"{device}.db"),
            "operator_pid": 1234, "mode_of_transport": "bus" if device == "bus-17" else "metro",
            "durability": "normal", "stops_file": str(STOPS), "reader": {"kind": "simulated"},
            "feedback": {"kind": "simulated"},
            "service": {"service_id": "17", "trip_id": "17-0815", "block_id": "B3"} if device == "bus-17" else None,
            # a platform's gates share passback: accepted at one, refused at the others
            "policy": {"passback_scope": "stop-area" if location == "platform" else "device"},
            "server": {"production_url": self.base, "credentials_file": str(credentials),
                       "allow_insecure_http": True,  # the server runs on loopback, in this process's care
                       "upload_interval_s": 0.5, "feeds_interval_s": 2.0},
        })

    def start_agents(self) -> None:
        stops = {s.stop_area_id: s for s in load_stops(STOPS)}
        positions = {
            "bus-17": SimulatedRoute([(stops[s].lat, stops[s].long) for s in ROUTE], speed_kmh=40),
            "platform-odp": SimulatedRoute([(stops["ODP"].lat, stops["ODP"].long)]),
            "platform-odp-2": SimulatedRoute([(stops["ODP"].lat, stops["ODP"].long)]),
            # at Centralstationen, where anna boarded seconds ago: the simulation is minutes shorter than
            # the ride, and the inspector also hears of the bus's acceptances (travel-speed fraud, 9)
            "handheld-7": SimulatedRoute([(stops["CEN"].lat, stops["CEN"].long)]),
        }
        for device in DEVICES:
            self.agents[device] = build_agent(self.device_config(device), reader=SimulatedReader(),
                                              feedback=SimulatedFeedback(), position=positions[device])

    # --- passengers -----------------------------------------------------------------------------

    async def passengers(self, office: BackOffice) -> tuple[list[Passenger], str]:
        """Tickets as travellers hold them; returns them and the id of the one to revoke later."""
        now = utcnow()
        valid_id, valid = await office.issue("anna", ["A", "B"])
        _, zone_c = await office.issue("bertil", ["C"])
        revoked_id, revoked = await office.issue("cecilia", ["A", "B"])
        _, platform_ticket = await office.issue("david", ["A"])
        _, inspected = await office.issue("eva", ["A", "B"])
        wallet = await office.call("shop-1", "POST", "/device/key", {"did": "phone-erik"})
        _, erik = await office.issue("erik", ["A", "B"])
        device_key = mtb.b64url_decode(wallet["deviceKey"])
        live = signer.device_sign(erik, did="phone-erik", kid=wallet["kid"], device_key=device_key, at=now)
        screenshot = signer.device_sign(erik, did="phone-erik", kid=wallet["kid"], device_key=device_key,
                                        at=now - timedelta(minutes=5))
        issuer_key = keys.load_private_key((self.data / "issuer-key.pem").read_bytes())
        kid = mtb.decode(valid).issuer.header.kid
        expired = signer.mint(issuer_key, pid=1234, kid=kid, tickets=[signer.TicketSpec(
            "EXPIRED-1", now - timedelta(days=1, hours=2), now - timedelta(days=1), zones=["A", "B"])])
        forged = signer.mint(keys.generate_es256_key(), pid=1234, kid=kid, tickets=[signer.TicketSpec(
            "FORGED-1", now - timedelta(hours=1), now + timedelta(days=30), zones=["A", "B", "C"])])
        b64 = lambda raw: mtb.wrap_transport(raw, "zlib+base64url")  # noqa: E731 - as a barcode carries it
        people = [
            Passenger("anna: valid ticket", "bus-17", valid, 0, at_stop="CEN"),
            Passenger("anna again at the same door", "bus-17", valid, 8),
            Passenger("bertil: zone C ticket in zone A", "bus-17", zone_c, 2, at_stop="ODP"),
            Passenger("cecilia: valid before revocation", "bus-17", revoked, 0, at_stop="KTH"),
            Passenger("erik: device-signed in the app", "bus-17", b64(live), 0, at_stop="UNI"),
            Passenger("erik's screenshot, 5 minutes old", "bus-17", b64(screenshot), 4),
            Passenger("filip: expired yesterday", "bus-17", b64(expired), 3),
            Passenger("gustav: forged ticket", "bus-17", b64(forged), 5),
            Passenger("a cracked phone screen", "bus-17", "not-an-mtb!", 1),
            Passenger("david at Odenplan platform", "platform-odp", platform_ticket, 0),
            Passenger("david again (passback)", "platform-odp", platform_ticket, 8),
            Passenger("david hands it over at gate 2", "platform-odp-2", platform_ticket, 8, seen_elsewhere=True),
            Passenger("inspector checks eva", "handheld-7", inspected, 0),
            Passenger("inspector checks anna", "handheld-7", valid, 0),
        ]
        self.say(f"back office: sold 6 tickets through POST /product, /manifest and /ticket; ticket {valid_id} "
                 "is anna's")
        return people, revoked_id

    async def scan(self, person: Passenger) -> None:
        agent = self.agents[person.device]
        if person.at_stop is not None:
            route = agent.tracker.source
            stops = [s.stop_area_id for s in load_stops(STOPS)]
            while agent.tracker.place().stop_area is None or \
                    agent.tracker.place().stop_area.stop_area_id != person.at_stop:  # type: ignore[union-attr]
                route.advance()  # type: ignore[union-attr]
                if route.finished:  # type: ignore[union-attr]
                    raise RuntimeError(f"the bus never reached {person.at_stop} ({stops})")
        if person.seen_elsewhere:
            await self.fleet_use_arrived(agent, mtb.decode(person.barcode).tickets[0].ticket_id)
        feedback: SimulatedFeedback = agent.feedback  # type: ignore[assignment]
        shown, decided = len(feedback.shown), agent.decided
        await agent.reader.push(person.barcode)  # type: ignore[attr-defined]
        await feedback.wait_for(shown + 1, timeout=15)
        if agent.decided == decided:
            raise RuntimeError(f"{person.device} could not decide {person.label!r} (see the log)")
        decision = agent.decisions[-1]
        place = agent.tracker.place().stop_area
        self.results.append((person, decision.event_result, decision.event_reason))
        mark = "ok " if decision.event_result == person.expected else "!! "
        self.say(f"  {mark}{person.device:<14} {place.stop_area_id if place else '-':<4} {person.label:<36} "
                 f"-> {decision.event_result} {feedback.shown[-1].colour:<5} {feedback.shown[-1].text}")
        if person.seen_elsewhere:
            self.say(f"       {person.device} knew from the server's uses feed: {decision.event_reason}")

    async def fleet_use_arrived(self, agent: Agent, ticket_id: str, timeout: float = 15) -> None:
        """Wait until the uses feed has brought another device's acceptance of the ticket."""
        deadline = time.monotonic() + timeout
        while (await agent.engine.run(agent.engine.cache.fleet_last_uses, ticket_id, None))[0] is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for the uses feed to bring {ticket_id}")
            await asyncio.sleep(0.05)

    # --- the run --------------------------------------------------------------------------------

    async def run(self) -> int:
        self.deploy_server()
        try:
            async with aiohttp.ClientSession() as session:
                await self.wait_for_server(session)
                office = BackOffice(self.base, session, self.credentials)
                self.start_agents()
                people, revoked_id = await self.passengers(office)
                stop_all = asyncio.Event()
                tasks = [asyncio.create_task(a.run(install_signal_handlers=False)) for a in self.agents.values()]
                for agent in self.agents.values():  # first contact: keys, KDKs, deny-list
                    await agent.syncer.sync_once()  # type: ignore[union-attr]
                self.say("devices: bus-17 (route 17 Centralstationen -> Mörby), platform-odp and platform-odp-2 "
                         "(two gates of Odenplan), handheld-7 (inspection)")
                for person in people:
                    await self.scan(person)
                await office.call("admin", "PUT", f"/ticket/{revoked_id}/revoke")
                self.say(f"back office: ticket {revoked_id} (cecilia) revoked; waiting for the deny-list to reach bus-17")
                bus = self.agents["bus-17"]
                await self.wait(lambda: bus.syncer.feed("deny-list").status.changes > 0, "deny-list sync")  # type: ignore[union-attr]
                await self.scan(Passenger("cecilia after revocation", "bus-17", people[3].barcode, 7, at_stop="DAN"))
                await self.employer_scene(session)
                for agent in self.agents.values():
                    agent.stop.set()
                await asyncio.wait_for(asyncio.gather(*tasks), 30)
                stop_all.set()
                return await self.report(office)
        finally:
            for agent in self.agents.values():
                await close_agent(agent)
            if self.server is not None:
                self.server.terminate()
                self.server.wait(10)

    async def employer_scene(self, session: aiohttp.ClientSession) -> None:
        """The employer story (JobTicket B2B API): an HR sync adds an employee, the monthly
        roll-over issues her job ticket, she rides green; the next sync leaves her out, her
        ticket is revoked, and after the deny-list sync the bus refuses it (7)."""
        data = str(self.data)
        company = server_cli("b2b", "company", "add", "--data", data, "--name", "ACME Logistics", "--product-id",
                             "job-ticket", "--fare-amount", "49", "--currency", "SEK", "--zones", "A,B,C",
                             "--modes", "bus,metro")["id"]
        key = server_cli("b2b", "key", "add", "--data", data, "--company", str(company))
        integration = server_cli("b2b", "integration", "add", "--data", data, "--company", str(company))["id"]
        b2b = self.base.replace("/api/v1", "/b2b")
        auth = {"Authorization": basic_auth(key["keyId"], key["secret"])}

        async def sync(sync_id: str, hr_ids: list[str]) -> None:
            roster = [{"firstName": "Hanna", "lastName": hr_id, "email": f"{hr_id}@acme.example", "hrId": hr_id,
                       "startDate": "2024-01-01"} for hr_id in hr_ids]
            async with session.post(f"{b2b}/hr-integrations/{integration}/sync", headers=auth,
                                    json={"syncId": sync_id, "employees": roster}) as response:
                if response.status != 204:
                    raise RuntimeError(f"HR sync failed: {response.status} {await response.text()}")

        await sync("demo-1", ["hanna", "ivar"])
        issued = server_cli("b2b", "rollover", "--data", data)["issued"]
        async with session.get(f"{b2b}/employees", headers=auth, params={"email": "hanna@acme.example"}) as response:
            [hanna] = (await response.json())["data"]["data"]
        async with session.get(f"{b2b}/employees/{hanna['id']}/ticket", headers=auth) as response:
            ticket = (await response.json())["data"]
        self.say(f"employer: HR sync added 2 employees; the roll-over issued {issued} job tickets for "
                 f"{ticket['ticketMonth']} (hanna's {ticket['ticketId']}, valid to {ticket['validUntil']})")
        bus = self.agents["bus-17"]
        await self.scan(Passenger("hanna: job ticket from her employer", "bus-17", ticket["mtb"], 0))
        seen = bus.syncer.feed("deny-list").status.changes  # type: ignore[union-attr]
        await sync("demo-2", ["ivar"])
        self.say("employer: the next HR sync leaves hanna out: offboarded, her ticket revoked")
        await self.wait(lambda: bus.syncer.feed("deny-list").status.changes > seen, "deny-list sync")  # type: ignore[union-attr]
        await self.scan(Passenger("hanna after leaving the company", "bus-17", ticket["mtb"], 7))

    async def wait(self, condition: Any, what: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)

    async def report(self, office: BackOffice) -> int:
        expected_ok = all(code == person.expected for person, code, _ in self.results)
        by_device: dict[str, Counter[int]] = {d: Counter() for d in DEVICES}
        for person, code, _ in self.results:
            by_device[person.device][code] += 1
        recorded: dict[str, list[str]] = {}
        for device, agent in self.agents.items():
            recorded[device] = [e["localEventId"] for d in agent.decisions for e in d.events]
        # Every event each device recorded must now be on the server, exactly once.
        ticket_ids = {e["ticketId"] for a in self.agents.values() for d in a.decisions for e in d.events}
        on_server: Counter[str] = Counter()
        for ticket_id in sorted(ticket_ids):
            try:
                events = await office.call("admin", "GET", f"/ticket/{ticket_id}/event")
            except RuntimeError:
                continue  # a ticket the server never issued (forged, expired, unreadable) has no page
            on_server.update(e["ticketEvent"]["localEventId"] for e in events)
        print()
        codes = list(range(10))
        print(f"{'device':<14}" + "".join(f"{c:>4}" for c in codes) + f"{'events':>8}{'synced':>8}{'outbox':>8}{'deny':>6}")
        all_synced = True
        for device, agent in self.agents.items():
            ids = recorded[device]
            synced = sum(1 for i in ids if on_server[i] >= 1)
            foreign = [i for i in ids if i not in on_server]
            dupes = sum(1 for i in ids if on_server[i] > 1)
            outbox = agent.engine.cache.outbox_count()
            all_synced &= outbox == 0 and dupes == 0
            deny = agent.syncer.feed("deny-list").status.changes if agent.syncer else 0
            print(f"{device:<14}" + "".join(f"{by_device[device][c] or '.':>4}" for c in codes)
                  + f"{len(ids):>8}{synced:>8}{outbox:>8}{deny:>6}")
            if dupes:
                print(f"  {device}: {dupes} event(s) stored twice on the server")
            if foreign:
                print(f"  {device}: {len(foreign)} event(s) of tickets the server did not issue (accepted, "
                      "not listed under a ticket page)")
        print("result codes: " + ", ".join(f"{c} {RESULT_NAMES[c]}" for c in codes))
        failed = [(p.label, p.expected, code, reason) for p, code, reason in self.results if code != p.expected]
        for label, expected, code, reason in failed:
            print(f"UNEXPECTED: {label}: expected {expected}, got {code} ({reason})")
        ok = expected_ok and all_synced
        print(f"simulation: {'OK' if ok else 'FAILED'} - {len(self.results)} scans, "
              f"{sum(len(v) for v in recorded.values())} events recorded, outboxes empty: {all_synced}")
        return 0 if ok else 1


def run_simulation(workdir: str | None = None, *, verbose: bool = True) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        return asyncio.run(Simulation(Path(workdir), verbose=verbose).run())
    with tempfile.TemporaryDirectory(prefix="mtb-sim-") as tmp:
        return asyncio.run(Simulation(Path(tmp), verbose=verbose).run())
