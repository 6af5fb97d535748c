"""The link's rules on a controlled clock, against the real server behind a fault-injecting proxy:
a 429 is waited out (``Retry-After``), not backed off; a 5xx is backed off; a refused token is
renewed once; a token lives by local receipt time + (exp - iat); the server's ``Date`` is
compared with the device clock. Alarms land in the cache, where ``agent status`` shows them."""
from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid

import pytest

from agent.cli import main
from agent.sync import AuthFailed, Backoff
from mtb.timeutil import parse_time

from ..faultproxy import Fault, FaultProxy
from ..server.conftest import event
from ..simclock import SimulatedClock
from .conftest import HIGH_LIMIT


class MaxJitter(random.Random):
    """Back-off without the jitter: every delay is the longest the back-off allows."""

    def uniform(self, a: float, b: float) -> float:
        return b


def queue_events(device, count: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    device.cache.record([event(f"T-{i}", i) for i in ids], [])
    device.syncer.kick()
    return ids


@pytest.fixture
async def linked(start_server, make_device):
    """(clock, proxy, device): a device on a simulated clock, a proxy in front of the server."""
    clock = SimulatedClock()
    server = start_server(rate_limit=HIGH_LIMIT)
    proxy = await FaultProxy(server.thread.origin, clock=clock.monotonic).start()
    device = make_device(proxy.origin + "/api/v1", clock=clock, upload_interval_s=0.5)
    await device.syncer.sync_once()  # first contact: token, feeds
    yield clock, proxy, device, server
    await proxy.stop()


def uploads(proxy: FaultProxy) -> list[float]:
    return [t for t, method, path in proxy.arrivals if method == "POST" and path.endswith("/validation")]


async def run_loop(device, clock: SimulatedClock):
    """The sync loop, run until the first upload is due (the interval after the first contact's)."""
    stop = asyncio.Event()
    task = asyncio.create_task(device.syncer.run(stop))
    await clock.settle()
    await clock.advance(device.syncer.uploader.due - clock.now)
    return stop, task


async def test_a_429_is_waited_out_to_the_second_and_is_an_alarm_until_then(linked, capsys, caplog):
    clock, proxy, device, server = linked
    device.syncer.set_backoff(lambda: Backoff(base_s=0.5, cap_s=2))  # a 5xx would be retried within 2 s
    caplog.set_level(logging.INFO, logger="agent.sync")
    proxy.inject(Fault("status", 429, retry_after=30, path_contains="/validation"),
                 Fault("status", 429, retry_after=30, path_contains="/validation"))
    ids = queue_events(device, 3)
    stop, task = await run_loop(device, clock)
    [first] = uploads(proxy)
    alarm = device.cache.alarms()["sync-rate-limited"]
    ends_in = (parse_time(alarm["until"]) - clock.wall()).total_seconds()
    assert ends_in == pytest.approx(30, abs=0.01)  # the time it ends
    assert main(["status", "--db", str(device.cache.path)]) == 0
    shown = json.loads(capsys.readouterr().out)["alarms"]["sync-rate-limited"]
    assert "429" in shown["text"] and shown["until"] == alarm["until"]
    sent = len(proxy.arrivals)
    await clock.advance(first + 29.9 - clock.now)
    assert len(proxy.arrivals) == sent  # nothing at all while the server's block lasts
    await clock.advance(first + 30.1 - clock.now)
    assert uploads(proxy)[1] == pytest.approx(first + 30)  # the second 429: wait again
    await clock.advance(first + 59.9 - clock.now)
    assert len(uploads(proxy)) == 2
    await clock.advance(first + 60.1 - clock.now)
    assert uploads(proxy)[2] == pytest.approx(first + 60)
    assert device.cache.outbox_count() == 0 and set(ids) <= set(server.events_stored())
    assert "sync-rate-limited" not in device.cache.alarms()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("ALARM sync-rate-limited" in m for m in messages) == 1  # once when raised, not per 429
    assert sum("alarm sync-rate-limited cleared" in m for m in messages) == 1
    stop.set()
    await task


async def test_a_5xx_is_backed_off_exponentially(linked):
    clock, proxy, device, server = linked
    device.syncer.set_backoff(lambda: Backoff(base_s=2, cap_s=60, rng=MaxJitter()))
    proxy.inject(*[Fault("status", status, path_contains="/validation") for status in (503, 500, 502, 504)])
    ids = queue_events(device, 5)
    stop, task = await run_loop(device, clock)
    for _ in range(160):  # 40 s in steps of 0.25 s
        await clock.advance(0.25)
    times = uploads(proxy)
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    assert gaps == pytest.approx([2, 4, 8, 16])  # not the 0.5 s upload interval, not a Retry-After
    assert device.cache.outbox_count() == 0 and all(server.events_stored().get(i) == 1 for i in ids)
    assert device.syncer.uploader.status.failures == 0 and device.syncer.uploader.status.errors == 4
    stop.set()
    await task


async def test_a_refused_token_is_renewed_once_then_the_upload_goes_through(linked):
    clock, proxy, device, server = linked
    ids = queue_events(device, 2)
    proxy.inject(Fault("status", 401, path_contains="/validation"))
    before = len(proxy.arrivals)
    assert await device.syncer.upload_pending() == 2
    calls = [(method, path.rsplit("/", 1)[-1]) for _, method, path in proxy.arrivals[before:]]
    assert calls == [("POST", "validation"), ("GET", "val1"), ("POST", "validation")]
    assert statuses_of(proxy)[-3:] == [401, 200, 200]  # the login, then BoB's batch answer
    assert all(server.events_stored().get(i) == 1 for i in ids)


async def test_credentials_refused_are_an_alarm_and_park_nothing(linked, capsys):
    clock, proxy, device, server = linked
    queue_events(device, 2)
    proxy.inject(Fault("status", 401, path_contains="/validation"), Fault("status", 401, path_contains="/auth/"))
    with pytest.raises(AuthFailed):
        await device.syncer.upload_pending()
    assert (device.cache.outbox_count(parked=False), device.cache.outbox_count(parked=True)) == (2, 0)
    assert main(["status", "--db", str(device.cache.path)]) == 0
    alarm = json.loads(capsys.readouterr().out)["alarms"]["sync-auth"]
    assert "credentials" in alarm["text"] and alarm["until"]  # when it is tried again
    assert await device.syncer.upload_pending() == 2
    assert "sync-auth" not in device.cache.alarms()


async def test_token_life_is_local_receipt_time_plus_its_lifetime(start_server, make_device):
    clock = SimulatedClock(wall_offset_s=5 * 3600)  # the device's wall clock runs 5 hours fast
    server = start_server(rate_limit=HIGH_LIMIT, token_lifetime_seconds=3600)
    proxy = await FaultProxy(server.thread.origin, clock=clock.monotonic).start()
    try:
        device = make_device(proxy.origin + "/api/v1", clock=clock)
        kdks = device.syncer.feed("kdks")
        start = clock.now
        for minute in (*range(0, 55, 5), 58.8):  # calls for 58.8 minutes: one token
            clock.now = start + minute * 60
            await kdks.run()
        assert [path for _, _, path in proxy.arrivals].count("/api/v1/auth/val1") == 1
        clock.now = start + 59.1 * 60  # within a minute of its end: renewed before the call
        await kdks.run()
        tokens = [t for t, _, path in proxy.arrivals if path == "/api/v1/auth/val1"]
        assert len(tokens) == 2 and tokens[1] - tokens[0] == pytest.approx(59.1 * 60)
    finally:
        await proxy.stop()


@pytest.mark.parametrize("offset_s, alarm", [(0, False), (120, True), (-120, True)])
async def test_the_server_date_is_compared_with_the_device_clock(start_server, make_device, offset_s, alarm):
    server = start_server(rate_limit=HIGH_LIMIT)
    device = make_device(server.base, clock=SimulatedClock(wall_offset_s=offset_s))
    await device.syncer.feed("kdks").run()
    assert abs(float(device.cache.get_meta("clock_skew_s")) - offset_s) < 5
    assert device.cache.get_meta("server_time")
    assert ("clock-skew" in device.cache.alarms()) is alarm


def statuses_of(proxy: FaultProxy) -> list[int | str]:
    return [status for _, _, status in proxy.log]
