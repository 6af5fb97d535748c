"""A sync channel: one thing sync does on its own schedule, with its own status and back-off (a
feed, or the uploader). One failing channel neither holds back nor speeds up the others."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import ClassVar

from ..engine import Engine
from .client import ServerClient
from .errors import RateLimited
from .pacing import Backoff
from .status import SyncStatus


class Channel(ABC):
    name: ClassVar[str]

    def __init__(self, engine: Engine, client: ServerClient, *, interval_s: float) -> None:
        self.engine = engine
        self.cache = engine.cache
        self.client = client
        self.interval_s = interval_s
        self.backoff = Backoff()
        self.due = 0.0  # the next attempt, on the client's monotonic clock
        self.status = SyncStatus(self.name)
        self._loaded = False

    @abstractmethod
    async def attempt(self, status: SyncStatus) -> int:
        """Do the channel's work once; returns how many items it brought in or sent."""

    def retry_delay(self) -> float:
        return self.backoff.next_delay()

    async def run(self, attempt: Callable[[SyncStatus], Awaitable[int]] | None = None) -> int:
        """One attempt (``attempt``: another way of making it than :meth:`attempt`), recorded in
        the channel's status, and the next one scheduled: after the interval, after back-off on a
        failure, when the server's block ends on a 429. Raises what failed."""
        if not self._loaded:
            self.status = await self.engine.run(SyncStatus.load, self.cache, self.name)
            self._loaded = True
        clock = self.client.clock
        try:
            changes = await (attempt or self.attempt)(self.status)
        except Exception as exc:
            wait = exc.retry_after if isinstance(exc, RateLimited) else self.retry_delay()
            self.due = clock.monotonic() + wait
            self.status.failed(clock.wall(), exc)
            await self.engine.run(self.status.save, self.cache)
            raise
        self.backoff.reset()
        self.due = clock.monotonic() + self.interval_s
        self.status.succeeded(clock.wall(), changes)
        await self.engine.run(self.status.save, self.cache)
        return changes
