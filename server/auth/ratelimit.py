"""Limits: the request rate per credential, as the JobTicket B2B overview describes it, and
failed logins per (client address, entity).

Each key may take ``requests`` slots in any rolling ``window`` seconds; a role may have its own
(requests, window, block), e.g. the devices'. The one that goes over gets 429 with
``Retry-After`` and blocks the key for ``block`` seconds; attempts during the block get 429 too
(with the time left) and do not extend it.

The server talks to its limiters through :class:`Limiter` only, so the state can move (into
the database, for several server processes) without touching a caller. :class:`RateLimiter`
keeps it in memory, per process (a restart forgets blocks); only the event loop touches it,
so it needs no lock.
"""
from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol


class Limiter(Protocol):
    def hit(self, key: str, role: str | None = None) -> int | None:
        """Take a slot for ``key`` (a credential of ``role``, for its role's limit): None when
        allowed, else the seconds to wait (429)."""

    def blocked(self, key: str) -> int | None:
        """Seconds left of a block on ``key``, without taking a slot."""

    def release(self, key: str) -> None:
        """Give back the slot taken last (the attempt did not happen after all)."""

    def forget(self, key: str) -> None:
        """Drop the slots ``key`` holds (a login succeeded: its earlier failures no longer count)."""


class RateLimiter:
    def __init__(self, requests: int, window: float, block: float,
                 clock: Callable[[], float] = time.monotonic,
                 roles: Mapping[str, tuple[int, float, float]] | None = None):
        self.requests = requests
        self.window = window
        self.block = block
        self.clock = clock
        self.roles = dict(roles or {})  # role -> (requests, window, block)
        self._hits: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}
        self._calls = 0

    def hit(self, key: str, role: str | None = None) -> int | None:
        """Count one request for ``key`` (a credential of ``role``); None when allowed, else the
        seconds to wait."""
        requests, window, block = self.roles.get(role or "", (self.requests, self.window, self.block))
        now = self.clock()
        self._calls += 1
        if self._calls % 10_000 == 0:
            self._sweep(now)
        until = self._blocked_until.get(key)
        if until is not None:
            if now < until:
                return max(1, math.ceil(until - now))
            del self._blocked_until[key]
            self._hits.pop(key, None)
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - window:
            hits.popleft()
        if len(hits) >= requests:
            if block > 0:
                hits.clear()
                self._blocked_until[key] = now + block
                return max(1, math.ceil(block))
            return max(1, math.ceil(hits[0] + window - now))
        hits.append(now)
        return None

    def blocked(self, key: str) -> int | None:
        """Seconds left of a block on ``key``, without counting a request."""
        until = self._blocked_until.get(key)
        now = self.clock()
        return max(1, math.ceil(until - now)) if until is not None and now < until else None

    def release(self, key: str) -> None:
        hits = self._hits.get(key)
        if hits:
            hits.pop()

    def forget(self, key: str) -> None:
        self._hits.pop(key, None)

    def _sweep(self, now: float) -> None:
        for key in [k for k, until in self._blocked_until.items() if until <= now]:
            del self._blocked_until[key]
        longest = max([self.window, *(window for _, window, _ in self.roles.values())])
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - longest]:
            del self._hits[key]
