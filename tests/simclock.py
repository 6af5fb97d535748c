"""A controlled clock for sync tests: simulated monotonic and wall time that moves only when
the test advances it, so minutes of sync run in seconds and no assertion depends on timing.

Sync waits only through its clock (``agent.sync.pacing.Clock``). ``advance(s)`` moves time to
each sleeper's deadline in turn, wakes it, and lets the tasks run (over real loopback HTTP)
until they all wait on the clock again.
"""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

from mtb.timeutil import utcnow

SETTLE_TIMEOUT_S = 20.0


class SimulatedClock:
    def __init__(self, *, wall_offset_s: float = 0.0, start: float = 1000.0) -> None:
        self.now = start
        self._start = start
        self._wall_start = utcnow() + timedelta(seconds=wall_offset_s)
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return self._wall_start + timedelta(seconds=self.now - self._start)

    async def sleep(self, seconds: float, *wake: asyncio.Event) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        entry = (self.now + seconds, asyncio.get_running_loop().create_future())
        self._sleepers.append(entry)
        waiters = [asyncio.ensure_future(event.wait()) for event in wake]
        try:
            await asyncio.wait([entry[1], *waiters], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._sleepers.remove(entry)
            for waiter in waiters:
                waiter.cancel()

    def sleeping(self) -> int:
        return sum(1 for _, future in self._sleepers if not future.done())

    def next_deadline(self) -> float | None:
        return min((deadline for deadline, future in self._sleepers if not future.done()), default=None)

    async def settle(self, sleepers: int = 1) -> None:
        """Let the tasks run until ``sleepers`` of them wait on this clock (and stay so)."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        stable = 0
        while stable < 3:
            await asyncio.sleep(0.001)
            stable = stable + 1 if self.sleeping() >= sleepers else 0
            if time.monotonic() > deadline:
                raise AssertionError(f"sync did not come back to sleep within {SETTLE_TIMEOUT_S} s")

    async def advance(self, seconds: float, *, sleepers: int = 1) -> None:
        """Move time forward by ``seconds``, waking each sleeper at its deadline in order."""
        target = self.now + seconds
        for _ in range(100_000):  # bounded: each round wakes at least one sleeper
            deadline = self.next_deadline()
            if deadline is None or deadline > target:
                break
            self.now = max(self.now, deadline)
            for due, future in self._sleepers:
                if due <= self.now and not future.done():
                    future.set_result(None)
            await self.settle(sleepers)
        self.now = target
