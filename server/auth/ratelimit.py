"""Rate limit per credential, as the JobTicket B2B overview describes it.

Each credential (entity id) may make ``requests`` requests in any rolling ``window`` seconds;
a role may have its own (requests, window, block), e.g. the devices'.
The request that goes over gets 429 with ``Retry-After`` and blocks the credential for
``block`` seconds; requests during the block get 429 too (with the time left) and do not
extend it. State is in memory, per server process: a restart forgets blocks.

Only the event loop touches a :class:`RateLimiter`, so it needs no lock.
"""
from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping


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

    def _sweep(self, now: float) -> None:
        for key in [k for k, until in self._blocked_until.items() if until <= now]:
            del self._blocked_until[key]
        longest = max([self.window, *(window for _, window, _ in self.roles.values())])
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - longest]:
            del self._hits[key]
