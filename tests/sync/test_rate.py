"""A busy validator never locks itself out of its own server (issue 10.1): scans through the
real scan path, sync on a controlled clock, and a server with its default rate limits whose
limiter runs on the same simulated clock (two simulated minutes are two minutes to it too)."""
from __future__ import annotations

import asyncio
import os

from mtb.scan_context import Validator
from agent.runtime import Agent
from agent.sync import RequestBudget
from hardware import SimulatedFeedback, SimulatedReader

from ..simclock import SimulatedClock

SCANS_PER_S = 10
STEP_S = 1 / SCANS_PER_S


def device_agent(device) -> Agent:
    return Agent(engine=device.engine, reader=SimulatedReader(), feedback=SimulatedFeedback(),
                 validator=Validator("bus-1"), syncer=device.syncer, metadata_max_age_s=7 * 86400)


async def scan_for(agent: Agent, clock: SimulatedClock, seconds: float,
                   barcodes: list[bytes]) -> tuple[list[str], int]:
    """One scan every STEP_S of simulated time; returns the events recorded and the most
    requests the device made in any minute."""
    recorded: list[str] = []
    busiest = 0
    for step in range(round(seconds / STEP_S)):
        decision = await agent.handle_scan(barcodes[step % len(barcodes)])
        assert decision is not None
        recorded += [e["localEventId"] for e in decision.events]
        await clock.settle()
        await clock.advance(STEP_S)
        busiest = max(busiest, agent.syncer.client.budget.used())  # type: ignore[union-attr]
    return recorded, busiest


async def issued(api, count: int) -> list[bytes]:
    barcodes = []
    for i in range(count):
        reply = await api.issue(f"rider-{i}", issueMtb=True)
        assert reply.status == 201, reply
        barcodes.append(reply.body["ticketBundle"]["mtb"].encode())
    return barcodes


async def test_ten_scans_a_second_for_two_minutes_stay_inside_the_default_limit(start_server, make_device,
                                                                                 office):
    clock = SimulatedClock()
    server = start_server(clock=clock)  # the default limits: a device may make 120 requests a minute
    barcodes = await issued(office(server), 4) + [os.urandom(40)]  # accepted, passback, unreadable
    device = make_device(server.base, clock=clock)  # the default intervals: uploads 5 s, feeds 60 s
    agent = device_agent(device)
    await device.syncer.sync_once()
    stop = asyncio.Event()
    loop = asyncio.create_task(device.syncer.run(stop))
    recorded, busiest = await scan_for(agent, clock, 120, barcodes)
    await clock.advance(10)  # the last batch goes up
    stop.set()
    await loop
    assert len(recorded) == 1200 == agent.decided
    assert device.cache.outbox_count() == 0
    stored = server.events_stored()
    assert [stored.get(i) for i in recorded] == [1] * 1200  # every event delivered, exactly once
    for channel in device.syncer.channels:
        assert channel.status.errors == 0, (channel.name, channel.status.last_error)  # no 429, nothing failed
    assert not [kind for kind in device.cache.alarms() if kind.startswith("sync-")]  # (the simulated wall
    # clock ran ahead of the server's real one: its skew alarm is another test's business)
    # Bounded by the upload interval, not by scans: 12 uploads and 4 feed calls a minute, plus
    # a token, far below the budget (60) and the server's limit for devices (120).
    assert busiest <= 20


async def test_a_device_set_to_upload_at_every_scan_is_held_to_its_budget(start_server, make_device, office):
    """Even misconfigured (uploads 0.01 s apart), the request budget keeps it under the limit."""
    clock = SimulatedClock()
    server = start_server(clock=clock)
    barcodes = await issued(office(server), 2)
    device = make_device(server.base, clock=clock, upload_interval_s=0.01)
    agent = device_agent(device)
    await device.syncer.sync_once()
    stop = asyncio.Event()
    loop = asyncio.create_task(device.syncer.run(stop))
    recorded, busiest = await scan_for(agent, clock, 90, barcodes)
    await clock.advance(60)
    stop.set()
    await loop
    assert busiest == 60  # the budget was the limit this time...
    assert all(channel.status.errors == 0 for channel in device.syncer.channels)  # ...and no 429 came
    stored = server.events_stored()
    assert [stored.get(i) for i in recorded] == [1] * 900


async def test_an_event_after_a_quiet_spell_goes_up_at_once_a_rush_waits_for_the_interval(start_server,
                                                                                         make_device, office):
    clock = SimulatedClock()
    server = start_server(clock=clock)
    [barcode] = await issued(office(server), 1)
    device = make_device(server.base, clock=clock, upload_interval_s=5)
    agent = device_agent(device)
    await device.syncer.sync_once()
    stop = asyncio.Event()
    loop = asyncio.create_task(device.syncer.run(stop))
    await clock.advance(30)  # quiet
    await agent.handle_scan(barcode)
    await clock.settle()
    assert device.cache.outbox_count() == 0  # at once, no clock time passed
    await agent.handle_scan(barcode)
    await clock.advance(4.9)
    assert device.cache.outbox_count() == 1  # a rush: waits for the interval...
    await clock.advance(0.2)
    assert device.cache.outbox_count() == 0  # ...and goes up when it has passed
    stop.set()
    await loop


async def test_a_request_with_a_reserve_leaves_that_much_of_the_budget_to_the_others():
    """A long-poll that returns at once while entries flood in asks with a reserve: uploads
    still find room in the window."""
    clock = SimulatedClock()
    budget = RequestBudget(8, 60.0, clock)
    for _ in range(6):
        await budget.acquire(reserve=2)
    held = asyncio.create_task(budget.acquire(reserve=2))
    await clock.settle()
    assert not held.done()  # 6 of 8 used: another hold now would eat into the reserve
    await budget.acquire()
    await budget.acquire()  # the others get the last two at once
    assert budget.used() == 8 and not held.done()
    await clock.advance(60.0, sleepers=0)
    assert held.done() and budget.used() == 1  # the window moved on: the hold got its turn
