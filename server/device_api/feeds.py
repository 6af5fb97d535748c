"""Feeds a device can wait on: the deny list and the uses feed, pulled by id and pushed by a
long-poll (``wait=S``: the answer comes as soon as an entry beyond the device's id commits,
or after S seconds with an empty page).

A :class:`FeedWatch` knows the newest id of one feed that readers may be given, and wakes the
requests waiting beyond it. It learns of new entries three ways:

- a commit in this process pokes it at once (:meth:`FeedWatch.poke`);
- on PostgreSQL the deny list's inserts ``NOTIFY``, and a listener in every process pokes its
  watch, so a revoke on one worker wakes the long-polls held by all of them;
- a poll, while anyone waits: every :data:`POLL_SECONDS` where nothing notifies (SQLite shared
  by several processes; the uses feed, whose ingests are many and must not take the global
  lock a NOTIFY takes at commit), every :data:`SAFETY_POLL_SECONDS` as a safety net elsewhere.

The uses feed's newest id is a horizon (:meth:`server.store.Store.uses_horizon`): ingests on
several processes commit in any order, and a reader given an id must never later find a
smaller one. The deny list needs none: its ids are taken under a lock held to commit.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone

from ..store.core import DENY_SEQUENCE

POLL_SECONDS = 0.25
SAFETY_POLL_SECONDS = 5.0
FRESH_SECONDS = 0.2  # a newest id read this recently is good enough for a plain (not waiting) read
MAX_WAIT_SECONDS = 55  # below the usual 60 s idle timeout of proxies and load balancers


class FeedWatch:
    def __init__(self, name: str, read_newest: Callable[[], Awaitable[int]], *, notified: bool):
        self.name = name
        self.read_newest = read_newest
        self.poll_seconds = SAFETY_POLL_SECONDS if notified else POLL_SECONDS
        self.newest = 0
        self.read_at = float("-inf")
        self.waiters = 0
        self._changed = asyncio.Condition()
        self._poked = asyncio.Event()
        self._reading: asyncio.Task[int] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def poke(self) -> None:
        """Something committed: the next read asks the database, and waiters get it now
        (event-loop thread only)."""
        self.read_at = float("-inf")
        self._poked.set()

    async def current(self) -> int:
        """The newest id, read again unless it was read within :data:`FRESH_SECONDS`; concurrent
        callers share one read."""
        if time.monotonic() - self.read_at > FRESH_SECONDS:
            if self._reading is None:
                self._reading = asyncio.ensure_future(self._read())
            reading = self._reading
            try:
                await asyncio.shield(reading)
            finally:
                if self._reading is reading and reading.done():
                    self._reading = None
        return self.newest

    async def _read(self) -> int:
        newest = await self.read_newest()
        self.read_at = time.monotonic()
        if newest != self.newest:
            self.newest = newest
            async with self._changed:
                self._changed.notify_all()
        return newest

    async def wait_beyond(self, after: int, timeout: float) -> int:
        """Wait until the newest id is beyond ``after`` or ``timeout`` passes; the newest id."""
        deadline = time.monotonic() + timeout
        self.waiters += 1
        try:
            async with self._changed:
                while self.newest <= after and not self._stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._poked.set()  # a waiter: make the watcher look now, then at its pace
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), left)
        finally:
            self.waiters -= 1
        return self.newest

    async def run(self) -> None:
        """While anyone waits: re-read when poked, and every poll period."""
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._poked.wait(), self.poll_seconds)
            self._poked.clear()
            if self.waiters:  # a plain read asks for itself (current()); nobody waiting, nothing to read
                try:
                    await self._read()
                except Exception:  # noqa: BLE001 - a failed read is retried at the next period
                    await asyncio.sleep(self.poll_seconds)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name=f"feed-{self.name}")

    async def stop(self) -> None:
        """Stop watching, and answer the requests waiting now (the server is shutting down:
        a held long-poll must not hold the shutdown up for its whole wait)."""
        self._stopping = True
        async with self._changed:
            self._changed.notify_all()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class Feeds:
    """The application's watches (``feeds["deny"]``, ``feeds["uses"]``), the database listener
    that pokes the deny list's, and the pruning of uses past the horizon."""

    PRUNE_SECONDS = 600.0

    def __init__(self, run: Callable[..., Awaitable[object]], store: object, uses_horizon_seconds: int):
        self.run = run
        self.store = store
        self.horizon = uses_horizon_seconds
        self.watches = {"deny": FeedWatch("deny", lambda: run(store.deny_newest), notified=False),  # type: ignore
                        "uses": FeedWatch("uses", lambda: run(store.uses_horizon), notified=False)}  # type: ignore
        self._unlisten: Callable[[], None] | None = None
        self._pruning: asyncio.Task[None] | None = None

    def __getitem__(self, name: str) -> FeedWatch:
        return self.watches[name]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        deny = self.watches["deny"]
        self._unlisten = self.store.db.listen(DENY_SEQUENCE,  # type: ignore[attr-defined]
                                              lambda: loop.call_soon_threadsafe(deny.poke))
        if self._unlisten is not None:
            deny.poll_seconds = SAFETY_POLL_SECONDS
        for watch in self.watches.values():
            watch.start()
        self._pruning = loop.create_task(self._prune(), name="prune-uses")

    async def _prune(self) -> None:
        while True:
            cutoff = datetime.now(timezone.utc) - timedelta(seconds=self.horizon)
            with contextlib.suppress(Exception):
                await self.run(self.store.prune_uses, cutoff)  # type: ignore[attr-defined]
            await asyncio.sleep(self.PRUNE_SECONDS)

    async def stop(self) -> None:
        if self._unlisten is not None:
            await asyncio.to_thread(self._unlisten)
        if self._pruning is not None:
            self._pruning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruning
        for watch in self.watches.values():
            await watch.stop()
