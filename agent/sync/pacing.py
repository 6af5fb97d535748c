"""When the device may talk to the server: a clock the tests can drive, back-off after a
failure, ``Retry-After`` kept within reason, and a request budget that keeps the device inside
the server's rate limit whatever the scan rate.

Every wait in sync goes through a :class:`Clock`, so a test runs minutes of sync on a
controlled clock instead of the wall clock.
"""
from __future__ import annotations

import asyncio
import math
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
import time
from typing import Protocol

from mtb.timeutil import utcnow

from .errors import RateLimited

RETRY_AFTER_RANGE_S = (1.0, 900.0)
RETRY_AFTER_DEFAULT_S = 60.0


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never jumps: what intervals, back-off and token life use."""

    def wall(self) -> datetime:
        """The device's wall clock (UTC): what status and alarms show."""

    async def sleep(self, seconds: float, *wake: asyncio.Event) -> None:
        """Sleep ``seconds``, or until one of ``wake`` is set."""


class SystemClock:
    """The real clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return utcnow()

    async def sleep(self, seconds: float, *wake: asyncio.Event) -> None:
        if not wake:
            await asyncio.sleep(max(0.0, seconds))
            return
        waiters = [asyncio.ensure_future(event.wait()) for event in wake]
        try:
            await asyncio.wait(waiters, timeout=max(0.0, seconds), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


@dataclass
class Backoff:
    """Exponential back-off with full jitter (a fleet coming back online does not stampede)."""

    base_s: float = 1.0
    cap_s: float = 300.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def next_delay(self) -> float:
        delay = self.rng.uniform(0, min(self.cap_s, self.base_s * 2 ** self.attempt))
        self.attempt = min(self.attempt + 1, 30)
        return delay

    def reset(self) -> None:
        self.attempt = 0


def retry_after(value: str | None) -> float:
    """``Retry-After`` in seconds, kept within reason: ``inf`` must not stop sync, ``0`` must not spin."""
    try:
        seconds = float(value) if value else RETRY_AFTER_DEFAULT_S
    except ValueError:
        seconds = RETRY_AFTER_DEFAULT_S
    if math.isnan(seconds):
        seconds = RETRY_AFTER_DEFAULT_S
    return min(max(seconds, RETRY_AFTER_RANGE_S[0]), RETRY_AFTER_RANGE_S[1])


class RequestBudget:
    """At most ``requests`` requests in any ``window_s`` seconds, and none while the server has
    blocked this credential (after a 429). The server limits each credential the same way; a
    budget below its limit is what keeps a busy device from locking itself out."""

    def __init__(self, requests: int, window_s: float, clock: Clock) -> None:
        if requests < 1 or window_s <= 0:
            raise ValueError("a request budget needs requests >= 1 and window_s > 0")
        self.requests = requests
        self.window_s = window_s
        self.clock = clock
        self._sent: deque[float] = deque()
        self._blocked_until = 0.0

    def used(self) -> int:
        """Requests sent in the current window."""
        self._forget(self.clock.monotonic())
        return len(self._sent)

    def has_room(self, reserve: int = 0) -> bool:
        """Whether a request now (leaving ``reserve`` to others) would go without waiting."""
        return self.blocked_for() == 0 and self.used() < max(1, self.requests - reserve)

    def blocked_for(self) -> float:
        """Seconds left of the server's block (0 when not blocked)."""
        return max(0.0, self._blocked_until - self.clock.monotonic())

    def block(self, seconds: float) -> None:
        """The server said 429: send nothing for ``seconds``."""
        self._blocked_until = max(self._blocked_until, self.clock.monotonic() + seconds)

    async def acquire(self, reserve: int = 0) -> None:
        """Wait for room in the window, then count one request. Raises :class:`RateLimited`
        while the server's block lasts: a request then would only be refused (and counted).

        ``reserve``: leave that many requests of the window to others. A long-poll that returns
        at once while entries keep coming asks with a reserve, so uploads always find room."""
        limit = max(1, self.requests - reserve)
        while True:
            blocked = self.blocked_for()
            if blocked > 0:
                raise RateLimited(blocked)
            now = self.clock.monotonic()
            self._forget(now)
            if len(self._sent) < limit:
                self._sent.append(now)
                return
            await self.clock.sleep(self._sent[len(self._sent) - limit] + self.window_s - now)

    def _forget(self, now: float) -> None:
        while self._sent and self._sent[0] + self.window_s <= now:  # as acquire() computes its wait
            self._sent.popleft()
