"""The feeds a device mirrors from the server, one small adapter each.

Two shapes cover them: an :class:`EtagFeed` fetches a whole document again only when its ETag
changed (participant metadata, stops, TICKLE macro sets; KDKs, which the server sends without
one), and a :class:`CursorFeed` pages through entries after the last one it applied (the deny
list, other devices' uses). A new feed is one more subclass and one more line in :data:`FEEDS`;
its cursor or ETag and its status come with the base class.
"""
from __future__ import annotations

import json
import logging
import math
from abc import abstractmethod
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

from mtb import MtbFormatError, b64url_decode
from mtb.checks import DenyKind, Use
from mtb.keys import KeyMaterialError
from mtb.timeutil import TimeFormatError, format_extended, parse_time

from ..engine import Engine
from ..stops import GtfsError, StopArea, parse_stops
from .channel import Channel
from .client import ServerClient
from .errors import BadFeedData, Rejected, Transient
from .status import SyncStatus

log = logging.getLogger(__name__)


class Feed(Channel):
    """A feed the device mirrors into its cache, refreshed every ``interval_s``."""


class EtagFeed(Feed):
    path: ClassVar[str]
    raw: ClassVar[bool] = False  # the body as bytes (not JSON)
    optional: ClassVar[bool] = False  # a 404 means "this deployment publishes none"

    async def attempt(self, status: SyncStatus) -> int:
        headers = {"If-None-Match": status.etag} if status.etag else None
        try:
            code, answer_headers, body = await self.client.call("GET", self.path, headers=headers, raw=self.raw)
        except Rejected as exc:
            if exc.status == 404 and self.optional:
                status.etag = None  # what it publishes next is new to the device, even if it was held before
                return await self.none_published()
            raise
        if code == 304:
            await self.unchanged()
            return 0
        changes = await self.apply(body)
        status.etag = answer_headers.get("ETag")  # only once the document is in the cache
        return changes

    @abstractmethod
    async def apply(self, body: Any) -> int:
        """Put a new document in the cache (raise :class:`BadFeedData` to keep the old one)."""

    async def none_published(self) -> int:
        """An optional feed's 404: by default what the device holds stays (e.g. stops from its own file)."""
        return 0

    async def unchanged(self) -> None:
        """The server confirmed the document the device has (304)."""


class CursorFeed(Feed):
    """Entries after a cursor, page by page until an empty page (a server may cap its pages
    below what was asked). A slow link shrinks the page so that one still gets through.

    A cursor feed can also be held open (:meth:`hold`): the server keeps the request until an
    entry beyond the cursor commits, or ``wait`` seconds pass (``wait=S``, a long-poll), so a
    device online learns of a new entry within a round trip instead of at its next poll."""

    path: ClassVar[str]
    cursor_param: ClassVar[str]
    optional: ClassVar[bool] = False  # a 404 means "this server publishes none" (not an error)
    max_page: ClassVar[int] = 10_000
    min_page: ClassVar[int] = 100
    min_hold_gap_s: ClassVar[float] = 0.0  # after entries came, hold again no sooner than this
    HOLD_MARGIN_S: ClassVar[float] = 10.0  # a held request's deadline: the hold plus this

    def __init__(self, engine: Engine, client: ServerClient, *, interval_s: float) -> None:
        super().__init__(engine, client, interval_s=interval_s)
        self.page = self.max_page
        self.requests = 0  # pages asked for since start (held or not)
        self.holding = False  # a held request is out now

    async def hold(self, wait_s: float, reserve: int = 0) -> int:
        """One held attempt (through :meth:`run`, so status and back-off are kept): entries that
        are there come at once; when none is, the request waits up to ``wait_s`` seconds for
        one. ``reserve``: the request budget this leaves to others. Returns entries applied."""
        return await self.run(lambda status: self._pages(status, wait_s, reserve))

    async def attempt(self, status: SyncStatus) -> int:
        return await self._pages(status, 0.0, 0)

    async def _pages(self, status: SyncStatus, wait_s: float, reserve: int) -> int:
        applied = 0
        held = wait_s > 0  # only the first request is held: once entries come, the rest are pages
        while True:
            after = await self.cursor()
            status.cursor = after
            data = await self._page(after, wait_s, reserve)
            wait_s = 0.0
            if not data:
                self.page = min(self.max_page, self.page * 2)
                return applied
            count, highest = await self.apply_page(data, after)
            if highest is None or highest <= after:
                raise BadFeedData(f"{self.path} page after entry {after} makes no progress")
            applied += count
            status.cursor = highest
            if held and len(data) < self.page:
                return applied  # held: the news is in (a short page is the end of it, as a rule)

    async def _page(self, after: int, wait_s: float, reserve: int) -> list[Any]:
        params: dict[str, Any] = {self.cursor_param: after, "limit": self.page}
        timeout_s = None
        if wait_s:
            params["wait"] = round(wait_s)
            timeout_s = wait_s + self.HOLD_MARGIN_S
        self.requests += 1
        self.holding = bool(wait_s)
        try:
            _, _, data = await self.client.call("GET", self.path, params=params, timeout_s=timeout_s,
                                                reserve=reserve)
        except Transient:
            self.page = max(self.min_page, self.page // 4)
            raise
        except Rejected as exc:
            if exc.status == 404 and self.optional:
                return []
            raise
        finally:
            self.holding = False
        if not isinstance(data, list):
            raise Transient(f"{self.path}: the answer is not a list")
        return data

    @abstractmethod
    async def cursor(self) -> int:
        """The last entry applied (kept in the cache together with the entries)."""

    @abstractmethod
    async def apply_page(self, items: list[Any], after: int) -> tuple[int, int | None]:
        """Apply a page; returns (entries applied, the highest entry id on the page)."""


# --- the feeds ---------------------------------------------------------------------------------

class ParticipantMetadataFeed(EtagFeed):
    """The trust list: issuer and auth-token public keys of every participant."""

    name = "participant-metadata"
    path = "/participantMetadata"

    async def apply(self, body: Any) -> int:
        try:
            store = await self.engine.run(self.cache.import_metadata, body)
        except KeyMaterialError as exc:
            raise BadFeedData(f"participant metadata refused, keeping the old keys: {exc}") from exc
        for problem in store.skipped:
            log.warning("participant metadata: %s", problem)
        return len(store.accepted)

    async def unchanged(self) -> None:
        # The trust list's age is the time the server last confirmed it.
        await self.engine.run(self.cache.set_meta, "metadata_checked_at", format_extended(self.client.clock.wall()))


class KdkFeed(EtagFeed):
    """Device key-derivation keys (the server sends them whole, without an ETag)."""

    name = "kdks"
    path = "/device/kdk"

    async def apply(self, body: Any) -> int:
        kdks: list[tuple[str, bytes]] = []
        for item in body if isinstance(body, list) else []:
            try:
                kdks.append((str(item["kid"]), b64url_decode(item["key"])))
            except (KeyError, TypeError, MtbFormatError):
                log.warning("skipping malformed KDK entry")
        if not kdks or dict(kdks) == await self.engine.run(lambda: dict(self.cache.keystore().kdks)):
            return 0
        await self.engine.run(self.cache.replace_kdks, kdks)
        return len(kdks)


class StopsFeed(EtagFeed):
    """The operator's GTFS stops; a deployment that publishes none answers 404."""

    name = "stops"
    path = "/stops"
    raw = True
    optional = True
    on_change: Callable[[list[StopArea]], None] | None = None  # the runtime re-maps positions

    async def apply(self, body: Any) -> int:
        try:
            areas = parse_stops(body.decode("utf-8"))
        except (GtfsError, UnicodeDecodeError) as exc:
            raise BadFeedData(f"stops from the server refused, keeping the old ones: {exc}") from exc
        await self.engine.run(self.cache.replace_stop_areas, areas)
        if self.on_change is not None:
            self.on_change(areas)
        return len(areas)


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


class DenyListFeed(CursorFeed):
    """Deny-list deltas by ``blacklistEntryId`` (the wire name); the newest entry for a ticket wins."""

    name = "deny-list"
    path = "/blacklist"
    cursor_param = "blacklistEntryId"

    async def cursor(self) -> int:
        return await self.engine.run(self.cache.deny_high_water)

    async def apply_page(self, items: list[Any], after: int) -> tuple[int, int | None]:
        rows, highest = deny_entries(items)
        if highest is not None and highest > after:
            await self.engine.run(self.cache.apply_deny_entries, rows, highest)
        return len({row[3] for row in rows}), highest


def fleet_uses(items: list[Any], own: str) -> tuple[list[tuple[int, Use]], int | None]:
    """Uses-feed entries as (useId, use), leaving out this device's own (``own``: its credential;
    the cache has them already), and the highest id on the page. A malformed entry is skipped and
    logged, and the next page still starts past it."""
    uses: list[tuple[int, Use]] = []
    highest: int | None = None
    for item in items:
        use_id = item.get("useId") if isinstance(item, dict) else None
        if not isinstance(use_id, int) or isinstance(use_id, bool):
            log.warning("skipping uses-feed entry without an integer useId %.200r", item)
            continue
        highest = use_id if highest is None else max(highest, use_id)
        try:
            use = _fleet_use(item)
        except (KeyError, TypeError, ValueError, TimeFormatError):
            log.warning("skipping malformed uses-feed entry %.200r", item)
            continue
        if use.device_id != own:
            uses.append((use_id, use))
    return uses, highest


def _fleet_use(item: dict[str, Any]) -> Use:
    ticket_id, device = item["ticketId"], item.get("device")
    if not isinstance(ticket_id, str) or not (device is None or isinstance(device, str)):
        raise TypeError("ticketId and device are strings")
    geo = item.get("geo")
    lat = long = None
    if geo is not None:
        lat, long = float(geo["lat"]), float(geo["long"])
        if not (math.isfinite(lat) and math.isfinite(long) and abs(lat) <= 90 and abs(long) <= 180):
            raise ValueError(f"position off the earth: {lat}, {long}")
    text = {key: item.get(key) if isinstance(item.get(key), str) else None for key in ("stopAreaId", "zoneId")}
    return Use(ticket_id, parse_time(item["time"]), "validation", 0, device, text["stopAreaId"], text["zoneId"],
               lat, long)


class UsesFeed(CursorFeed):
    """Other devices' accepted validations by ``useId``, for passback and fraud across devices.
    In a busy fleet it never runs dry: held again at most every ``min_hold_gap_s``. Entries
    older than ``horizon_s`` are forgotten (at most once a minute)."""

    name = "uses"
    path = "/uses"
    cursor_param = "useId"
    optional = True  # a back office without the feed: passback and fraud see this device's uses only
    min_hold_gap_s = 5.0
    horizon_s: float = 3600.0
    PRUNE_EVERY_S: ClassVar[float] = 60.0

    def __init__(self, engine: Engine, client: ServerClient, *, interval_s: float) -> None:
        super().__init__(engine, client, interval_s=interval_s)
        self._pruned_at = -math.inf

    async def cursor(self) -> int:
        return await self.engine.run(self.cache.uses_high_water)

    async def apply_page(self, items: list[Any], after: int) -> tuple[int, int | None]:
        uses, highest = fleet_uses(items, self.client.entity)
        if highest is not None and highest > after:
            await self.engine.run(self.cache.apply_fleet_uses, uses, highest)
        now = self.client.clock.monotonic()
        if now - self._pruned_at >= self.PRUNE_EVERY_S:
            self._pruned_at = now
            await self.engine.run(self.cache.prune_fleet_uses, self.horizon_s, self.client.clock.wall())
        return len(uses), highest


def tickle_sets(body: Any) -> dict[int, tuple[int, str]]:
    """BoB ``tickleMacros`` sets as the cache keeps them, ``{serial: (pid, JSON)}``; the whole
    answer is refused (:class:`BadFeedData`) when one set is malformed or two share a serial."""
    if not isinstance(body, list):
        raise BadFeedData("TICKLE macro sets: the answer is not a list; keeping the old ones")
    sets: dict[int, tuple[int, str]] = {}
    for item in body:
        if not _tickle_set(item) or item["serial"] in sets:
            raise BadFeedData(f"TICKLE macro set refused, keeping the old ones: {item!r:.200}")
        sets[item["serial"]] = (item["pid"], json.dumps(item, sort_keys=True, separators=(",", ":")))
    return sets


def _tickle_set(item: Any) -> bool:
    """A set as BoB describes it: whole pid and serial, macros each with a name and a condition."""
    if not isinstance(item, dict) or not (_whole(item.get("pid")) and _whole(item.get("serial"))):
        return False
    macros = item.get("macros")
    return isinstance(macros, list) and all(
        isinstance(m, dict) and isinstance(m.get("name"), str) and isinstance(m.get("condition"), str) for m in macros)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class TickleMacrosFeed(EtagFeed):
    """The operator's TICKLE macro sets, kept by serial (their version) for the day an MTB's
    ``c_tc`` conditions are evaluated; a deployment that publishes none answers 404, and the
    device then holds none either (the operator withdrew them)."""

    name = "tickle-macros"
    path = "/ticklemacros"
    optional = True

    async def apply(self, body: Any) -> int:
        return await self.engine.run(self.cache.replace_tickle_sets, tickle_sets(body))

    async def none_published(self) -> int:
        return await self.engine.run(self.cache.replace_tickle_sets, {})


FEEDS: tuple[type[Feed], ...] = (ParticipantMetadataFeed, KdkFeed, DenyListFeed, UsesFeed, StopsFeed,
                                 TickleMacrosFeed)


def default_feeds(engine: Engine, client: ServerClient, interval_s: float) -> list[Feed]:
    return [feed(engine, client, interval_s=interval_s) for feed in FEEDS]
