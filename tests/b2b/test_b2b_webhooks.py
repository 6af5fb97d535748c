"""Webhooks to receivers on 127.0.0.1: the signature verified by the shipped example receiver,
retries after a receiver that fails and recovers, order per employee, the delivery log, and an
endpoint disabled after a day of failures. The schedule runs on times the test chooses
(``b2b deliver --at``), never on the wall clock."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from server.b2b import webhooks
from server.b2b.cli import run_deliver, run_rollover

from .conftest import RECEIVER, Receiver, endpoint, row

pytestmark = pytest.mark.usefixtures("world")


async def test_the_example_receiver_verifies_real_deliveries(world):
    company = world.company()
    secret = webhooks.new_secret()
    received: list[dict] = []
    server = RECEIVER.make_server("127.0.0.1", 0, secret, received.append)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        world.store.add_endpoint(company.id, f"http://127.0.0.1:{server.server_address[1]}/", list(webhooks.EVENT_TYPES),
                                 secret, datetime.now(timezone.utc))
        assert (await company.sync([row("W1")])).status == 204
        await run_rollover(world.data_dir, datetime.now(timezone.utc))
        result = await run_deliver(world.data_dir, None)
        assert result == {"attempts": 2, "pending": 0}
        assert [e["event"]["type"] for e in received] == [webhooks.SUBSCRIPTION_CHANGED, webhooks.DOCUMENT_GENERATED]
        changed, document = received
        employee = await company.employee("W1")
        assert changed["payload"] == {"id": employee["id"], "resource": "employee",
                                      "subscription": {**employee["subscription"],
                                                       "nextTicketAt": changed["payload"]["subscription"]["nextTicketAt"]}}
        assert document["payload"]["employeeId"] == employee["id"]
        doc = await company.get(f"/employee-documents/{document['payload']['id']}")
        assert doc.status == 200
        assert isinstance(changed["event"]["timestamp"], int) and len(changed["event"]["id"]) == 36
    finally:
        server.shutdown()
        server.server_close()


def test_the_signature_resists_tampering_and_replay():
    secret = webhooks.new_secret()
    body = webhooks.envelope("e1", webhooks.SUBSCRIPTION_CHANGED, 1, {"id": 1})
    now = int(time.time())
    header = webhooks.signature(secret, body, now)
    RECEIVER.verify(secret, header, body, now=now)
    RECEIVER.verify(secret, f"{header},v1={'0' * 64}", body, now=now + 299)  # rotation: one match is enough
    for bad_header, bad_body, at in ((header, body + b" ", now), (header, body, now + 301), (header, body, now - 301),
                                     (webhooks.signature("whsec_other", body, now), body, now),
                                     (f"t={now}", body, now), (None, body, now), ("v1=ab", body, now)):
        with pytest.raises(RECEIVER.BadSignature):
            RECEIVER.verify(secret, bad_header, bad_body, now=at)


async def test_retries_after_failures_then_delivers_and_logs_every_attempt(world):
    company = world.company()
    receiver = Receiver(fail=2)
    endpoint_id = await endpoint(world, company, receiver, webhooks.SUBSCRIPTION_CHANGED)
    try:
        assert (await company.sync([row("R1")])).status == 204
        t0 = datetime.now(timezone.utc)
        assert (await run_deliver(world.data_dir, t0))["attempts"] == 1
        assert (await run_deliver(world.data_dir, t0 + timedelta(seconds=14)))["attempts"] == 0  # not due yet
        [delivery] = world.store.deliveries(endpoint_id)
        assert delivery.status == "pending" and delivery.attempts == 1 and delivery.last_status_code == 500
        failing_since = world.store.get_endpoint(endpoint_id).failing_since
        assert failing_since is not None and abs(failing_since - t0) < timedelta(seconds=1)  # failing since t0
        assert t0 + timedelta(seconds=15) <= delivery.next_attempt_at <= t0 + timedelta(seconds=30)
        assert (await run_deliver(world.data_dir, t0 + timedelta(seconds=31)))["attempts"] == 1
        [delivery] = world.store.deliveries(endpoint_id)
        assert delivery.next_attempt_at - (t0 + timedelta(seconds=31)) >= timedelta(seconds=30)  # doubled
        assert (await run_deliver(world.data_dir, t0 + timedelta(minutes=5)))["attempts"] == 1
        [delivery] = world.store.deliveries(endpoint_id)
        assert delivery.status == "delivered" and delivery.attempts == 3
        assert [a["status_code"] for a in world.store.attempts(delivery.id)] == [500, 500, 204]
        assert receiver.statuses == [500, 500, 204] and len(receiver.events) == 1
        assert world.store.get_endpoint(endpoint_id).failing_since is None
    finally:
        await receiver.stop()


async def test_order_per_employee_holds_while_one_employee_fails(world):
    company = world.company()
    receiver = Receiver()
    endpoint_id = await endpoint(world, company, receiver)
    try:
        assert (await company.sync([row("O1"), row("O2")])).status == 204
        employees = {e["hrIntergartionLinks"][0]["hrId"]: e["id"] for e in await company.employees()}
        receiver.fail_employee = employees["O1"]
        now = datetime.now(timezone.utc)
        await run_rollover(world.data_dir, now)
        assert (await company.sync([row("O2")])).status == 204  # O1 offboarded: a third event for O1
        await run_deliver(world.data_dir, now)
        # O2's two events went through in order; O1's first is retried, its later ones wait behind it.
        assert [(e["payload"].get("employeeId", e["payload"]["id"]), e["event"]["type"]) for e in receiver.events] == [
            (employees["O2"], webhooks.SUBSCRIPTION_CHANGED), (employees["O2"], webhooks.DOCUMENT_GENERATED)]
        log = world.store.deliveries(endpoint_id)
        o1 = [d for d in log if d.order_key == f"employee:{employees['O1']}"]
        assert [d.attempts for d in reversed(o1)] == [1, 0, 0]
        receiver.fail_employee = None
        await run_deliver(world.data_dir, now + timedelta(minutes=2))
        o1_events = [e for e in receiver.events if e["payload"].get("employeeId", e["payload"]["id"]) == employees["O1"]]
        assert [(e["event"]["type"], e["payload"].get("subscription", {}).get("status")) for e in o1_events] == [
            (webhooks.SUBSCRIPTION_CHANGED, "active"), (webhooks.DOCUMENT_GENERATED, None),
            (webhooks.SUBSCRIPTION_CHANGED, "cancelled")]
        assert all(d.status == "delivered" for d in world.store.deliveries(endpoint_id))
    finally:
        await receiver.stop()


async def test_a_day_of_failures_gives_up_and_disables_the_endpoint(world):
    company = world.company()
    receiver = Receiver(fail=10_000)
    endpoint_id = await endpoint(world, company, receiver, webhooks.SUBSCRIPTION_CHANGED)
    try:
        assert (await company.sync([row("F1")])).status == 204
        t0 = datetime.now(timezone.utc)
        await run_deliver(world.data_dir, t0)
        await run_deliver(world.data_dir, t0 + timedelta(hours=12))
        assert world.store.get_endpoint(endpoint_id).enabled
        await run_deliver(world.data_dir, t0 + timedelta(hours=24, seconds=1))
        endpoint_row = world.store.get_endpoint(endpoint_id)
        assert not endpoint_row.enabled and "24 h" in endpoint_row.disabled_reason
        [delivery] = world.store.deliveries(endpoint_id)
        assert delivery.status == "failed" and delivery.attempts == 3
        # Events after the endpoint was disabled wait for the operator.
        assert (await company.sync([row("F1"), row("F2")])).status == 204
        assert (await run_deliver(world.data_dir, t0 + timedelta(hours=25)))["attempts"] == 0
        receiver.fail = 0
        world.store.set_endpoint_enabled(endpoint_id, True, t0 + timedelta(hours=25))
        assert (await run_deliver(world.data_dir, t0 + timedelta(hours=25)))["attempts"] == 1
        assert world.store.get_endpoint(endpoint_id).enabled
    finally:
        await receiver.stop()


def test_the_schedule_backs_off_with_jitter_for_a_day():
    assert webhooks.retry_delay(1, lambda: 0.0) == timedelta(seconds=15)
    assert webhooks.retry_delay(1, lambda: 0.999999) < timedelta(seconds=30)
    assert webhooks.retry_delay(3, lambda: 0.0) == timedelta(seconds=60)
    assert webhooks.retry_delay(30, lambda: 0.999999) < timedelta(hours=1)
    created = datetime(2026, 5, 1, tzinfo=timezone.utc)
    at, attempts = created, 0
    while at is not None and attempts < 1000:
        attempts += 1
        last, at = at, webhooks.after_failure(attempts, created, at, lambda: 0.5)
    assert last - created >= timedelta(hours=24) and 20 < attempts < 60
    assert webhooks.should_disable(created, created + timedelta(hours=24))
    assert not webhooks.should_disable(created, created + timedelta(hours=23, minutes=59))
