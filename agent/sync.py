"""Sync with the ticket server: upload the outbox, download keys, KDKs and deny-list deltas.

The agent decides offline; sync only moves data when the network allows. Rules (spec
server-api.md, JobTicket conventions): 429 waits for ``Retry-After``; 500/502/503/504 and
network errors back off exponentially with full jitter; any other 4xx is not retried: the
events concerned are parked for a human (``outbox list`` shows them), never dropped. An
event leaves the outbox only when the server's answer names its ``localEventId``.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from multidict import CIMultiDict

from .cache import DenyKind, OutboxEvent
from .engine import Engine
from mtb.keys import KeyMaterialError
from mtb import MtbFormatError, b64url_decode
from .stops import GtfsError, StopArea, parse_stops
from mtb.timeutil import TimeFormatError, format_extended, parse_time, utcnow

log = logging.getLogger(__name__)

TRANSIENT_STATUS = {500, 502, 503, 504}
EVENT_LEVEL_STATUS = {400, 409, 413, 422}
RETRY_AFTER_RANGE_S = (1.0, 900.0)
TOKEN_RENEW_MARGIN_S = 60.0
BLACKLIST_PAGE = 10000
BLACKLIST_MIN_PAGE = 100


class SyncError(Exception):
    pass


class Transient(SyncError):
    """Network trouble or a 5xx: try again later with back-off."""


class RateLimited(SyncError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited, retry after {retry_after:.0f} s")
        self.retry_after = retry_after


class Rejected(SyncError):
    """A 4xx other than 429: retrying the same request will not help."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status

    @property
    def about_the_events(self) -> bool:
        """Only these answers to an upload say the events are wrong; 401/403/404/405 say the
        device (credentials, role, base URL) is, and parking its events would punish them."""
        return self.status in EVENT_LEVEL_STATUS


class AuthFailed(Rejected):
    """The credentials or the token were refused: a device-level problem, raised as an alarm."""


@dataclass
class Backoff:
    """Exponential back-off with full jitter (a fleet coming back online does not stampede)."""

    base_s: float = 1.0
    cap_s: float = 300.0
    attempt: int = 0

    def next_delay(self) -> float:
        delay = random.uniform(0, min(self.cap_s, self.base_s * 2 ** self.attempt))
        self.attempt = min(self.attempt + 1, 30)
        return delay

    def reset(self) -> None:
        self.attempt = 0


def _retry_after(value: str | None) -> float:
    """Retry-After in seconds, kept within reason: ``inf`` must not stop sync, ``0`` must not spin."""
    try:
        seconds = float(value) if value else 60.0
    except ValueError:
        seconds = 60.0
    if math.isnan(seconds):
        seconds = 60.0
    return min(max(seconds, RETRY_AFTER_RANGE_S[0]), RETRY_AFTER_RANGE_S[1])


def basic_auth(entity: str, password: str) -> str:
    """An HTTP Basic ``Authorization`` value (the JobTicket B2B convention)."""
    return "Basic " + base64.b64encode(f"{entity}:{password}".encode()).decode("ascii")


def _token_expiry(token: str) -> float:
    """The ``exp`` claim, read without verifying: the server is who checks the token."""
    try:
        claims = json.loads(b64url_decode(token.split(".")[1]))
        return float(claims["exp"])
    except (IndexError, KeyError, TypeError, ValueError, MtbFormatError):
        return time.time() + TOKEN_RENEW_MARGIN_S * 2


class ServerClient:
    """HTTP to the ticket server with the X-BoB-AuthToken flow (Basic -> ``GET /auth/{entity}``)."""

    def __init__(self, base_url: str, entity: str, password: str, *, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.entity = entity
        self._password = password
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._token_exp = 0.0

    def __repr__(self) -> str:  # never the password
        return f"ServerClient({self.base_url!r}, entity={self.entity!r})"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _fetch_token(self) -> str:
        status, _, data = await self._send("GET", f"/auth/{self.entity}",
                                           headers={"Authorization": basic_auth(self.entity, self._password)})
        if status != 200 or not isinstance(data, dict) or not isinstance(data.get("jwtCompact"), str):
            raise AuthFailed(status, f"GET /auth/{self.entity} gave no token")
        self._token, self._token_exp = data["jwtCompact"], _token_expiry(data["jwtCompact"])
        return self._token

    async def _auth_header(self) -> dict[str, str]:
        if self._token is None or self._token_exp - time.time() < TOKEN_RENEW_MARGIN_S:
            await self._fetch_token()
        return {"X-BoB-AuthToken": self._token or ""}

    async def call(self, method: str, path: str, *, json_text: str | None = None,
                   params: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
                   raw: bool = False) -> tuple[int, CIMultiDict[str], Any]:
        """One authenticated request (``json_text``: a body already encoded; ``raw``: the answer's
        bytes, not JSON); a 401 renews the token once."""
        if json_text is not None:
            headers = {**(headers or {}), "Content-Type": "application/json"}
        for attempt in (1, 2):
            status, answer_headers, data = await self._send(
                method, path, data=json_text, params=params, headers={**(headers or {}), **await self._auth_header()},
                raw=raw)
            if status != 401 or attempt == 2:
                if status == 401:
                    raise AuthFailed(401, "token refused twice")
                return status, answer_headers, data
            self._token = None
        raise AssertionError("unreachable")

    async def _send(self, method: str, path: str, *, data: str | None = None, params: dict[str, Any] | None = None,
                    headers: dict[str, str] | None = None, raw: bool = False) -> tuple[int, CIMultiDict[str], Any]:
        try:
            async with self._http().request(method, self.base_url + path, data=data, params=params,
                                            headers=headers) as response:
                body = await response.read()
                status, answer_headers = response.status, CIMultiDict(response.headers)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise Transient(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if status == 429:
            raise RateLimited(_retry_after(answer_headers.get("Retry-After")))
        if status in TRANSIENT_STATUS:
            raise Transient(f"{method} {path}: HTTP {status}")
        if status >= 400 and status != 401:
            raise Rejected(status, body.decode("utf-8", "replace"))
        if raw:
            return status, answer_headers, body
        try:
            data = json.loads(body) if body else None
        except ValueError as exc:
            raise Transient(f"{method} {path}: answer is not JSON") from exc
        return status, answer_headers, data


@dataclass
class SyncStatus:
    """What an operator needs to see: is the device online, how old are its lists."""

    online: bool = False
    last_error: str | None = None
    uploaded: int = 0
    parked: int = 0
    deny_entries: int = 0
    metadata_updates: int = 0
    stops_updates: int = 0


def deny_entries(items: list[Any]) -> tuple[list[tuple[DenyKind, str, datetime, int]], int | None]:
    """Deny-list feed entries as cache rows, and the highest entry id on the page. A malformed
    entry is skipped and logged, never fatal, and never stops the next page from starting past it."""
    rows: list[tuple[DenyKind, str, datetime, int]] = []
    highest: int | None = None
    for item in items:
        entry_id = item.get("blacklistEntryId") if isinstance(item, dict) else None
        if isinstance(entry_id, int) and not isinstance(entry_id, bool):
            highest = entry_id if highest is None else max(highest, entry_id)
        try:
            expire = parse_time(item["expire"])
            if not isinstance(entry_id, int) or isinstance(entry_id, bool):
                raise ValueError("no integer blacklistEntryId")
        except (KeyError, TypeError, ValueError, TimeFormatError):
            log.warning("skipping malformed deny-list entry %.200r", item)
            continue
        for key, kind in (("ticketId", "ticket"), ("travellerId", "traveller"), ("tokenId", "token")):
            if isinstance(item.get(key), str):
                rows.append((kind, item[key], expire, entry_id))
    return rows, highest


class Syncer:
    def __init__(self, engine: Engine, client: ServerClient, *, batch_size: int = 200,
                 upload_interval_s: float = 5.0, feeds_interval_s: float = 60.0,
                 backoff: Backoff | None = None) -> None:
        self.engine = engine
        self.cache = engine.cache
        self.client = client
        self.batch_size = batch_size
        self.upload_interval_s = upload_interval_s
        self.feeds_interval_s = feeds_interval_s
        self.status = SyncStatus()
        self.backoff = backoff or Backoff()
        self.deny_page = BLACKLIST_PAGE
        self.on_stops: Callable[[list[StopArea]], None] | None = None  # the runtime re-maps positions
        self._kick = asyncio.Event()

    def kick(self) -> None:
        """A scan was recorded: upload soon rather than at the next interval."""
        self._kick.set()

    # --- upload ---------------------------------------------------------------------------------

    async def upload_pending(self) -> int:
        """Upload until the outbox holds only parked events; returns events acknowledged."""
        total = 0
        for kind in ("validation", "inspection"):
            while True:
                batch = await self.engine.run(lambda: self.cache.outbox(limit=self.batch_size, event_type=kind))
                if not batch:
                    break
                acknowledged = await self._upload(kind, batch)
                total += acknowledged
                if acknowledged == 0 and not await self._progress_made(batch):
                    break
        self.status.uploaded += total
        return total

    async def _progress_made(self, batch: list[OutboxEvent]) -> bool:
        """True when the batch's events are gone or parked (so the next batch differs)."""
        head = await self.engine.run(lambda: self.cache.outbox(limit=1, event_type=batch[0].event_type))
        return not head or head[0].seq != batch[0].seq

    async def _upload(self, kind: str, events: list[OutboxEvent]) -> int:
        try:
            _, _, data = await self.client.call("POST", f"/{kind}",
                                                json_text="[" + ",".join(e.body_json for e in events) + "]")
        except Rejected as exc:
            if not exc.about_the_events:
                raise
            if len(events) > 1:  # find the bad event(s) by halving; the good ones still go up
                middle = len(events) // 2
                return await self._upload(kind, events[:middle]) + await self._upload(kind, events[middle:])
            reason = str(exc)
            log.error("server refused event %s (%s): parked for an operator", events[0].local_event_id, reason)
            await self.engine.run(lambda: self.cache.note_failure([events[0].seq], reason, park=True))
            self.status.parked += 1
            return 0
        if data is None:  # BoB's answer: 200 and no body, the whole batch is stored (all or nothing)
            acknowledged = [e.seq for e in events]
        else:
            answered = {item.get("localEventId") for item in data if isinstance(item, dict)}
            acknowledged = [e.seq for e in events if e.local_event_id in answered]
        if acknowledged:
            await self.engine.run(self.cache.acknowledge, acknowledged, format_extended(utcnow()))
        return len(acknowledged)

    # --- feeds ----------------------------------------------------------------------------------

    async def refresh_feeds(self) -> None:
        """Each feed on its own: one that keeps failing does not keep the others stale."""
        failures: list[Exception] = []
        for feed in (self._participant_metadata, self._kdks, self._deny_list, self._stops):
            try:
                await feed()
            except RateLimited:
                raise
            except Exception as exc:
                if not isinstance(exc, SyncError):
                    log.exception("feed %s failed", feed.__name__)
                failures.append(exc)
        if failures:
            raise failures[0]
        await self.engine.run(self.cache.set_meta, "feeds_synced_at", format_extended(utcnow()))

    async def _participant_metadata(self) -> None:
        etag = await self.engine.run(self.cache.get_meta, "metadata_etag")
        status, headers, data = await self.client.call("GET", "/participantMetadata",
                                                       headers={"If-None-Match": etag} if etag else None)
        if status == 304:
            await self.engine.run(self.cache.set_meta, "metadata_checked_at", format_extended(utcnow()))
            return
        try:
            store = await self.engine.run(self.cache.import_metadata, data)
        except KeyMaterialError as exc:
            log.error("participant metadata refused, keeping the old keys: %s", exc)
            return
        for problem in store.skipped:
            log.warning("participant metadata: %s", problem)
        if headers.get("ETag"):
            await self.engine.run(self.cache.set_meta, "metadata_etag", headers["ETag"])
        await self.engine.run(self.cache.set_meta, "metadata_checked_at", format_extended(utcnow()))
        self.status.metadata_updates += 1

    async def _stops(self) -> None:
        """The operator's GTFS stops (ETag); a deployment that publishes none answers 404."""
        etag = await self.engine.run(self.cache.get_meta, "stops_etag")
        try:
            status, headers, body = await self.client.call("GET", "/stops", raw=True,
                                                           headers={"If-None-Match": etag} if etag else None)
        except Rejected as exc:
            if exc.status == 404:
                return
            raise
        if status == 304:
            return
        try:
            areas = parse_stops(body.decode("utf-8"))
        except (GtfsError, UnicodeDecodeError) as exc:
            log.error("stops from the server refused, keeping the old ones: %s", exc)
            return
        await self.engine.run(self.cache.replace_stop_areas, areas)
        if headers.get("ETag"):
            await self.engine.run(self.cache.set_meta, "stops_etag", headers["ETag"])
        self.status.stops_updates += 1
        if self.on_stops is not None:
            self.on_stops(areas)

    async def _kdks(self) -> None:
        _, _, data = await self.client.call("GET", "/device/kdk")
        kdks = []
        for item in data if isinstance(data, list) else []:
            try:
                kdks.append((str(item["kid"]), b64url_decode(item["key"])))
            except (KeyError, TypeError, MtbFormatError):
                log.warning("skipping malformed KDK entry")
        if kdks:
            await self.engine.run(self.cache.replace_kdks, kdks)

    async def _deny_list(self) -> None:
        """Deltas by ``blacklistEntryId`` until an empty page: a server may cap its pages below
        what was asked. A slow link shrinks the page so that one still gets through."""
        while True:
            after = await self.engine.run(self.cache.deny_high_water)
            try:
                _, _, data = await self.client.call("GET", "/blacklist",
                                                    params={"blacklistEntryId": after, "limit": self.deny_page})
            except Transient:
                self.deny_page = max(BLACKLIST_MIN_PAGE, self.deny_page // 4)
                raise
            if not isinstance(data, list):
                raise Transient("deny-list answer is not a list")
            if not data:
                self.deny_page = min(BLACKLIST_PAGE, self.deny_page * 2)
                return
            rows, highest = deny_entries(data)
            if highest is None or highest <= after:
                log.error("deny-list page after entry %d makes no progress; trying again at the next refresh", after)
                return
            await self.engine.run(self.cache.apply_deny_entries, rows, highest)
            self.status.deny_entries += len({r[3] for r in rows})

    # --- the loop -------------------------------------------------------------------------------

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

    async def run(self, stop: asyncio.Event) -> None:
        """Sync until ``stop``; errors never escape, they only decide how long to wait."""
        backoff = self.backoff
        next_feeds = 0.0
        while not stop.is_set():
            wait_for_kick = True
            try:
                due = time.monotonic() >= next_feeds
                self._kick.clear()
                await self.sync_once(feeds=due)
                if due:
                    next_feeds = time.monotonic() + self.feeds_interval_s
                backoff.reset()
                self.status.online, self.status.last_error = True, None
                delay = self.upload_interval_s
            except RateLimited as exc:
                delay, wait_for_kick = exc.retry_after, False
                self._offline(str(exc))
            except AuthFailed as exc:
                log.error("ALARM sync: the server refuses this device's credentials (%s)", exc)
                delay, wait_for_kick = backoff.next_delay(), False
                self._offline(str(exc))
            except (Transient, Rejected) as exc:
                delay, wait_for_kick = backoff.next_delay(), False
                self._offline(str(exc))
            except Exception as exc:  # a bug must not stop syncing for months
                log.exception("sync failed")
                delay, wait_for_kick = backoff.next_delay(), False
                self._offline(f"{type(exc).__name__}: {exc}")
            await self._sleep(delay, stop, wait_for_kick)

    def _offline(self, reason: str) -> None:
        if self.status.online or self.status.last_error is None:
            log.warning("sync: %s", reason)
        self.status.online, self.status.last_error = False, reason

    async def _sleep(self, delay: float, stop: asyncio.Event, wake_on_kick: bool) -> None:
        waiters = [asyncio.ensure_future(stop.wait())]
        if wake_on_kick:
            waiters.append(asyncio.ensure_future(self._kick.wait()))
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
