"""The sync loop: each channel (the feeds, the uploader) when it is due, the link's alarms, and
nothing while the server has blocked the device.

The request rate is bounded three ways: uploads at least ``upload_interval_s`` apart, feeds
every ``feeds_interval_s`` (back-off when one fails), and the client's request budget under the
server's rate limit. After them, every ``feeds_interval_s``, the device's state report.

With ``long_poll_s`` the cursor feeds (the deny list, the uses feed) are pushed rather than
polled: each keeps one request open that the server answers as soon as an entry commits (a
revoke reaches the device within a round trip), or empty after ``long_poll_s``; a held request
is one request of the budget, however long it is held. After entries came the next hold waits
``long_poll_gap_s`` (a feed in flood costs at most one request per gap), and holds leave a
quarter of the budget to the rest. A server that answers at once instead of holding, or fails,
is polled at the feed interval (back-off after a failure) until it holds again.

A 429 stops every channel until ``Retry-After`` has passed; a 429, a
refused credential or a refused TLS handshake is an alarm in the cache (``agent status`` shows
it, with the time it ends or is tried again), logged once when raised and once when cleared.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from mtb.timeutil import format_extended

from ..engine import Engine
from ..stops import StopArea
from .channel import Channel
from .client import ServerClient
from .errors import AuthFailed, RateLimited, SyncError, TlsRefused
from .feeds import CursorFeed, Feed, StopsFeed, UsesFeed, default_feeds
from .pacing import Backoff
from .state_report import StateReport
from .uploader import Uploader

log = logging.getLogger("agent.sync")

RATE_LIMITED, AUTH_REFUSED, TLS_REFUSED = "sync-rate-limited", "sync-auth", "sync-tls"
LINK_ALARMS = (RATE_LIMITED, AUTH_REFUSED, TLS_REFUSED)
NOT_HELD_S = 5.0  # an empty answer to a long-poll faster than this (or half the hold): the server does not hold
HOLD_BUDGET_SHARE = 4  # holds leave 1/4 of the request budget to the other channels


def _alarm_kind(error: SyncError) -> str | None:
    if isinstance(error, RateLimited):
        return RATE_LIMITED
    if isinstance(error, AuthFailed):
        return AUTH_REFUSED
    if isinstance(error, TlsRefused):
        return TLS_REFUSED
    return None


class Syncer:
    def __init__(self, engine: Engine, client: ServerClient, *, batch_size: int = 200,
                 upload_interval_s: float = 5.0, feeds_interval_s: float = 60.0,
                 feeds: list[Feed] | None = None, long_poll_s: float = 0.0, long_poll_gap_s: float = 1.0,
                 uses_horizon_s: float = 3600.0) -> None:
        self.engine = engine
        self.cache = engine.cache
        self.client = client
        self.clock = client.clock
        self.feeds = feeds if feeds is not None else default_feeds(engine, client, feeds_interval_s)
        self.uploader = Uploader(engine, client, batch_size=batch_size, interval_s=upload_interval_s)
        self.state = StateReport(engine, client, interval_s=feeds_interval_s)
        for feed in self.feeds:
            if isinstance(feed, UsesFeed):
                feed.horizon_s = uses_horizon_s
        self.long_poll_s = long_poll_s
        self.long_poll_gap_s = long_poll_gap_s
        self._held: set[Channel] = set()  # feeds their long-poll keeps up to date while run() runs
        self._kick = asyncio.Event()
        self._failing: dict[str, set[str]] = {}  # link alarm -> the channels failing with it
        self._stale_alarms_checked = False
        client.on_server_time = self._observe_server_time

    @property
    def channels(self) -> list[Channel]:
        """In the order a pass runs them: the lists, the events, then the device's report."""
        return [*self.feeds, self.uploader, self.state]

    def feed(self, name: str) -> Feed:
        return next(feed for feed in self.feeds if feed.name == name)

    @property
    def on_stops(self) -> Callable[[list[StopArea]], None] | None:
        return next((f.on_change for f in self.feeds if isinstance(f, StopsFeed)), None)

    @on_stops.setter
    def on_stops(self, callback: Callable[[list[StopArea]], None] | None) -> None:
        for feed in self.feeds:
            if isinstance(feed, StopsFeed):
                feed.on_change = callback

    def set_backoff(self, make: Callable[[], Backoff]) -> None:
        for channel in self.channels:
            channel.backoff = make()

    def kick(self) -> None:
        """A scan was recorded: upload as soon as the minimum interval allows."""
        self.uploader.pending = True
        self._kick.set()

    # --- one pass, on demand (start-up, tests, the simulator) -----------------------------------

    async def refresh_feeds(self) -> None:
        """Every feed now, each on its own (one that fails does not keep the others stale);
        raises the first failure afterwards."""
        failures: list[Exception] = []
        for feed in self.feeds:
            try:
                await self._run(feed)
            except RateLimited:
                raise  # the server blocks the credential: the other feeds would be refused too
            except Exception as exc:
                failures.append(exc)
        if failures:
            raise failures[0]

    async def upload_pending(self) -> int:
        """Upload the outbox now; returns the events acknowledged."""
        return await self._run(self.uploader)

    async def sync_once(self, *, feeds: bool = True) -> None:
        """Feeds, then uploads; a failing feed does not hold the events back (it is raised after)."""
        problem: Exception | None = None
        if feeds:
            try:
                await self.refresh_feeds()
            except RateLimited:
                raise
            except Exception as exc:
                problem = exc
        await self.upload_pending()
        if problem is not None:
            raise problem

    # --- the loop -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Sync until ``stop``; errors never escape, they only decide when each channel is next due."""
        pushed = [feed for feed in self.feeds if isinstance(feed, CursorFeed)] if self.long_poll_s > 0 else []
        holds = [asyncio.create_task(self._hold(feed, stop), name=f"hold-{feed.name}") for feed in pushed]
        self._held.update(pushed)
        try:
            await self._poll(stop)
        finally:
            self._held.difference_update(pushed)
            for task in holds:
                task.cancel()  # a request held open ends now, not when the server lets it go
            await asyncio.gather(*holds, return_exceptions=True)

    async def _hold(self, feed: CursorFeed, stop: asyncio.Event) -> None:
        """Keep ``feed``'s long-poll open until ``stop`` (see the module's docstring)."""
        reserve = self.client.budget.requests // HOLD_BUDGET_SHARE
        while not stop.is_set():
            started = self.clock.monotonic()
            try:
                changes = await self._run(feed, lambda: feed.hold(self.long_poll_s, reserve))
            except Exception as exc:  # recorded in the feed's status; the next try is at feed.due
                if not isinstance(exc, SyncError):
                    log.exception("sync %s failed", feed.name)
                await self.clock.sleep(feed.due - self.clock.monotonic(), stop)
                continue
            if changes:
                await self.clock.sleep(max(self.long_poll_gap_s, feed.min_hold_gap_s), stop)
            elif self.clock.monotonic() - started < min(NOT_HELD_S, self.long_poll_s / 2):
                await self.clock.sleep(feed.interval_s, stop)  # not held: poll at the feed's pace

    async def _poll(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._kick.clear()
            blocked = self.client.budget.blocked_for()
            if blocked > 0:
                await self.clock.sleep(blocked, stop)
                continue
            for channel in self.channels:
                if stop.is_set() or not self._due(channel):
                    continue
                try:
                    await self._run(channel)
                except SyncError:
                    pass  # recorded in the channel's status, logged when it changed, alarmed if it must be
                except Exception:  # a bug must not stop syncing for months
                    log.exception("sync %s failed", channel.name)
                if self.client.budget.blocked_for() > 0:
                    break
            await self.clock.sleep(self._next_due() - self.clock.monotonic(), stop, self._kick)

    def _due(self, channel: Channel) -> bool:
        if channel in self._held or (channel is self.uploader and not self.uploader.pending):
            return False
        return channel.due <= self.clock.monotonic()

    def _next_due(self) -> float:
        dues = [channel.due for channel in (*self.feeds, self.state) if channel not in self._held]
        if self.uploader.pending:
            dues.append(self.uploader.due)
        return min(dues, default=self.clock.monotonic() + 60.0)

    async def _run(self, channel: Channel, work: Callable[[], Awaitable[int]] | None = None) -> int:
        """``channel.run()`` (or ``work``, another way of running it), with the link's alarms."""
        try:
            changes = await (work() if work is not None else channel.run())
        except SyncError as exc:
            await self._link_failed(channel, exc)
            raise
        await self._link_ok(channel)
        return changes

    # --- the link's alarms ----------------------------------------------------------------------

    async def _link_failed(self, channel: Channel, error: SyncError) -> None:
        kind = _alarm_kind(error)
        if kind is None:
            return
        ends = self.clock.wall() + timedelta(seconds=max(0.0, channel.due - self.clock.monotonic()))
        if kind == RATE_LIMITED:
            text = f"the server refuses this device's requests (HTTP 429); nothing is sent until {_at(ends)}"
        elif kind == AUTH_REFUSED:
            text = f"the server refuses this device's credentials or role ({error}); next attempt {_at(ends)}"
        else:
            text = f"TLS to the server refused ({error}); next attempt {_at(ends)}"
        self._failing.setdefault(kind, set()).add(channel.name)
        if await self.engine.run(self.cache.raise_alarm, kind, text, ends):
            log.error("ALARM %s: %s", kind, text)

    async def _link_ok(self, channel: Channel) -> None:
        """A channel got through: the rate limit is over, and its own auth or TLS trouble too.
        Link alarms left by an earlier run are cleared by the first success."""
        done = [kind for kind, names in self._failing.items()
                if kind == RATE_LIMITED or names == {channel.name}]
        for names in self._failing.values():
            names.discard(channel.name)
        if not self._stale_alarms_checked:
            self._stale_alarms_checked = True
            stored = await self.engine.run(self.cache.alarms)
            done += [kind for kind in LINK_ALARMS if kind in stored and kind not in self._failing]
        for kind in done:
            self._failing.pop(kind, None)
            if await self.engine.run(self.cache.clear_alarm, kind):
                log.info("alarm %s cleared: sync %s got through", kind, channel.name)

    async def _observe_server_time(self, server_time: datetime, local_time: datetime) -> None:
        await self.engine.run(self.cache.observe_server_time, server_time, local_time)


def _at(when: datetime) -> str:
    return format_extended(when)
