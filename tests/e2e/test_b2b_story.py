"""The employer story end to end: an HR sync adds an employee -> the roll-over issues the month's
ticket -> the document's Aztec code, scanned from the rendered PDF, is shown to a real agent
(simulated reader) -> green; a later HR sync leaves the employee out -> the webhook
``employee-subscription-changed`` reaches the example receiver, signature verified -> the agent,
after its next deny-list sync, refuses the same code with result 7. On both store backends."""
from __future__ import annotations

import base64
import json
import threading
from datetime import datetime, timezone

import aiohttp

from server.b2b import keys, webhooks
from server.b2b.cli import run_deliver, run_rollover
from server.b2b.records import Product
from server.b2b.store import B2BStore
from server.b2b.subscription import Plan
from server.config import load_config
from server.store import open_store

from ..b2b.conftest import load_receiver, row
from ..b2b.scan import scan_pdf
from ..server.conftest import backend, database_for, make_data_dir, postgres_server  # noqa: F401 - fixtures
from .conftest import ServerProcess


async def test_hr_sync_to_green_then_offboarded_to_result_7(tmp_path, make_agent, database_for):
    data = make_data_dir(tmp_path / "server", **database_for(),
                         b2b={"jobs": False, "timezone": "Europe/Berlin", "webhook_allowed_networks": ["127.0.0.1"]})
    server = ServerProcess(data).start()
    receiver_module = load_receiver()
    received: list[dict] = []
    secret = webhooks.new_secret()
    receiver = receiver_module.make_server("127.0.0.1", 0, secret, received.append)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    store = B2BStore(open_store(load_config(data).database_target(), pool_size=1).db)
    try:
        now = datetime.now(timezone.utc)
        company = store.add_company("ACME Logistics", Product("job-ticket", ("A", "B"), ("bus", "tram"),
                                                              {"amount": 49.0, "currency": "EUR", "vatAmount": 3.43,
                                                               "vatPercent": 7.0}), Plan(), now)
        integration = store.add_integration(company, "Personio", now)
        key, key_secret = keys.new_key(company, ["view-employees", "add-employees", "update-employees",
                                                 "remove-employees"], now)
        store.add_api_key(key)
        store.add_endpoint(company, f"http://127.0.0.1:{receiver.server_address[1]}/hooks",
                           [webhooks.SUBSCRIPTION_CHANGED], secret, now)
        auth = {"Authorization": "Basic " + base64.b64encode(f"{key.key_id}:{key_secret}".encode()).decode()}
        base = f"{server.origin}/b2b"
        async with aiohttp.ClientSession(headers=auth) as http:
            async def sync(sync_id: str, employees: list[dict]) -> None:
                async with http.post(f"{base}/hr-integrations/{integration}/sync",
                                     json={"syncId": sync_id, "employees": employees}) as response:
                    assert response.status == 204, await response.text()

            async def get(path: str) -> bytes:
                async with http.get(base + path) as response:
                    assert response.status == 200, await response.text()
                    return await response.read()

            # 1. The HR platform adds Anna; the roll-over issues her month's ticket and document.
            await sync("sync-1", [row("emp_HR_001")])
            result = await run_rollover(data, datetime.now(timezone.utc))
            assert result["issued"] == 1 and result["documents"] == 1
            [employee] = json.loads(await get("/employees"))["data"]["data"]
            [document] = json.loads(await get(f"/employees/{employee['id']}/documents"))["data"]["data"]
            code = scan_pdf(await get(f"/employee-documents/{document['id']}/download"))

            # 2. A real agent, synced with the server, scans the document's code: green.
            agent = make_agent(server.origin)
            await agent.syncer.sync_once()
            decision = await agent.handle_scan(code)
            assert decision.event_result == 0, decision.event_reason
            assert agent.feedback.last.colour == "green"

            # 3. The next sync leaves Anna out: offboarded, her ticket revoked, the webhook sent.
            await sync("sync-2", [row("emp_HR_002", first="Ben", last="Meyer")])
            delivered = await run_deliver(data, None)
            assert delivered["pending"] == 0
            changes = [e for e in received if e["payload"]["id"] == employee["id"]]
            assert [e["payload"]["subscription"]["status"] for e in changes] == ["active", "cancelled"]
            assert all(e["event"]["type"] == webhooks.SUBSCRIPTION_CHANGED for e in changes)

            # 4. After its deny-list sync the agent refuses the same code: result 7.
            await agent.syncer.refresh_feeds()
            decision = await agent.handle_scan(code)
            assert decision.event_result == 7, decision.event_reason
            assert agent.feedback.last.colour == "red"
    finally:
        receiver.shutdown()
        receiver.server_close()
        store.db.close()
        server.stop()
