"""Limits: the request rate per credential, as the JobTicket B2B overview describes it, and
failed logins per (client address, entity).

Each key may take ``requests`` slots in any rolling ``window`` seconds; a role may have its own
(requests, window, block), e.g. the devices'. The one that goes over gets 429 with
``Retry-After`` and blocks the key for ``block`` seconds; attempts during the block get 429 too
(with the time left) and do not extend it.

The rule is written once (:func:`take`, :func:`time_left`, on a key's :class:`LimitState`);
where the states live is the :class:`Limiter`'s business, and the server talks to its limiters
through that interface only:

- :class:`RateLimiter` keeps them in memory, per process (a restart forgets blocks); only the
  event loop touches it, so it needs no lock. For one process on SQLite.
- :class:`DatabaseLimiter` keeps them in the store's ``rate_limits`` table, each change one
  short transaction under a lock on the key, so several server processes (or hosts) on one
  database share every window and block. Not durable on purpose (PostgreSQL commits it
  without waiting for the disk): losing the last second of counts in a crash is harmless.
"""
from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..store.records import LimitState

Policies = Mapping[str, tuple[int, float, float]]  # role -> (requests, window, block)


@dataclass(frozen=True)
class Policy:
    requests: int
    window: float
    block: float


def take(state: LimitState, now: float, policy: Policy) -> int | None:
    """Take a slot: None when allowed, else the seconds to wait (and maybe a new block)."""
    if state.blocked_until is not None:
        if now < state.blocked_until:
            return max(1, math.ceil(state.blocked_until - now))
        state.blocked_until = None
        state.hits.clear()
    del state.hits[:bisect.bisect_right(state.hits, now - policy.window)]  # out of the window
    if len(state.hits) >= policy.requests:
        if policy.block > 0:
            state.hits.clear()
            state.blocked_until = now + policy.block
            state.keep_until = max(state.keep_until, state.blocked_until)
            return max(1, math.ceil(policy.block))
        return max(1, math.ceil(state.hits[0] + policy.window - now))
    state.hits.append(now)
    state.keep_until = max(state.keep_until, now + policy.window)
    return None


def time_left(state: LimitState | None, now: float) -> int | None:
    """Seconds left of a block, without taking a slot."""
    if state is None or state.blocked_until is None or now >= state.blocked_until:
        return None
    return max(1, math.ceil(state.blocked_until - now))


class Limiter(Protocol):
    """What the server calls; every method may wait for the database."""

    async def hit(self, key: str, role: str | None = None) -> int | None:
        """Count one request for ``key`` (a credential of ``role``); None when allowed, else the
        seconds to wait (429)."""

    async def blocked(self, key: str) -> int | None:
        """Seconds left of a block on ``key``, without counting a request."""

    async def release(self, key: str) -> None:
        """Give back the slot taken last (the attempt did not happen after all)."""

    async def forget(self, key: str) -> None:
        """Drop the slots ``key`` holds (a login succeeded: its earlier failures no longer count)."""


def limits_shared(shared_limits: bool | None, dialect: str) -> bool:
    """Whether the limits live in the database (config ``shared_limits``; default: on PostgreSQL,
    where several processes share the database)."""
    return shared_limits if shared_limits is not None else dialect != "sqlite"


def give_back(state: LimitState) -> None:
    if state.hits:
        state.hits.pop()


def drop_slots(state: LimitState) -> None:
    state.hits.clear()


class _Policies:
    def __init__(self, requests: int, window: float, block: float, roles: Policies | None):
        self.default = Policy(requests, window, block)
        self.roles = {role: Policy(*limits) for role, limits in (roles or {}).items()}
        self.longest = max([window, *(p.window for p in self.roles.values())])

    def policy(self, role: str | None) -> Policy:
        return self.roles.get(role or "", self.default)


class RateLimiter(_Policies):
    """In memory, one process."""

    def __init__(self, requests: int, window: float, block: float,
                 clock: Callable[[], float] = time.monotonic, roles: Policies | None = None):
        super().__init__(requests, window, block, roles)
        self.clock = clock
        self._states: dict[str, LimitState] = {}
        self._calls = 0

    async def hit(self, key: str, role: str | None = None) -> int | None:
        now = self.clock()
        self._calls += 1
        if self._calls % 10_000 == 0:
            self._sweep(now)
        state = self._states.setdefault(key, LimitState())
        return take(state, now, self.policy(role))

    async def blocked(self, key: str) -> int | None:
        return time_left(self._states.get(key), self.clock())

    async def release(self, key: str) -> None:
        if key in self._states:
            give_back(self._states[key])

    async def forget(self, key: str) -> None:
        if key in self._states:
            drop_slots(self._states[key])

    def _sweep(self, now: float) -> None:
        for key in [k for k, s in self._states.items() if s.keep_until <= now and time_left(s, now) is None]:
            del self._states[key]


class DatabaseLimiter(_Policies):
    """In the store, shared by every process on the database. ``run`` is the store runner."""

    SWEEP_SECONDS = 60.0

    def __init__(self, run: Any, store: Any, requests: int, window: float, block: float,
                 clock: Callable[[], float] = time.time, roles: Policies | None = None):
        super().__init__(requests, window, block, roles)
        self.run = run
        self.store = store
        self.clock = clock  # wall-clock seconds: the processes sharing a window must agree on it
        self._swept = clock()

    async def hit(self, key: str, role: str | None = None) -> int | None:
        now = self.clock()
        if now - self._swept > self.SWEEP_SECONDS:
            self._swept = now
            await self.run(self.store.sweep_limits, now)
        policy = self.policy(role)
        return await self.run(self.store.change_limit, key, lambda state: take(state, now, policy))

    async def blocked(self, key: str) -> int | None:
        return time_left(await self.run(self.store.get_limit, key), self.clock())

    async def release(self, key: str) -> None:
        await self.run(self.store.change_limit, key, give_back)

    async def forget(self, key: str) -> None:
        await self.run(self.store.change_limit, key, drop_slots)
