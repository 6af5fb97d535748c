"""A controlled clock for sync tests: simulated monotonic and wall time that moves only when
the test advances it, so minutes of sync run in seconds and no assertion depends on timing.

Sync waits only through its clock (``agent.sync.pacing.Clock``). ``advance(s)`` moves time to
each sleeper's deadline in turn, wakes it, and lets the tasks run (over real loopback HTTP)
until they all wait on the clock again.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from mtb.timeutil import utcnow

SETTLE_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class _Sleeper:
    deadline: float
    woken: asyncio.Future[None]
    wake: tuple[asyncio.Event, ...]


class SimulatedClock:
    def __init__(self, *, wall_offset_s: float = 0.0, start: float = 1000.0) -> None:
        self.now = start
        self._start = start
        self._wall_start = utcnow() + timedelta(seconds=wall_offset_s)
        self._sleepers: list[_Sleeper] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return self._wall_start + timedelta(seconds=self.now - self._start)

    async def sleep(self, seconds: float, *wake: asyncio.Event) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        entry = _Sleeper(self.now + seconds, asyncio.get_running_loop().create_future(), wake)
        self._sleepers.append(entry)
        waiters = [asyncio.ensure_future(event.wait()) for event in wake]
        try:
            await asyncio.wait([entry.woken, *waiters], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._sleepers.remove(entry)
            for waiter in waiters:
                waiter.cancel()

    def sleeping(self) -> int:
        """Tasks asleep on this clock and not about to wake (by time or by one of their events)."""
        return sum(1 for s in self._sleepers if not s.woken.done() and not any(e.is_set() for e in s.wake))

    def next_deadline(self) -> float | None:
        return min((s.deadline for s in self._sleepers if not s.woken.done()), default=None)

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
        await self.settle(sleepers)  # a task woken by an event (a scan's kick) first goes back to sleep
        for _ in range(100_000):  # bounded: each round wakes at least one sleeper
            deadline = self.next_deadline()
            if deadline is None or deadline > target:
                break
            self.now = max(self.now, deadline)
            for sleeper in self._sleepers:
                if sleeper.deadline <= self.now and not sleeper.woken.done():
                    sleeper.woken.set_result(None)
            await self.settle(sleepers)
        self.now = target
