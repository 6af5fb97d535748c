"""Position sources: where the device is (WGS84 decimal degrees, the BoB ``geoPosition``).

A source answers ``current()`` at once from memory (a scan never waits for the GPS) and does
any background work in ``run()``, which the agent starts as a task and ends with ``close()``.
``current()`` returns ``None`` when there is no usable fix; the checks then treat position as
unknown rather than trusting a stale one.

``NmeaGps`` reads GGA and RMC sentences from a serial GPS via pynmea2. ``parse_nmea`` is the
pure part, so every sentence rule can be tested without a port:

* bad checksum or a malformed sentence -> ``NmeaError`` (the GPS counts and ignores it);
* GGA quality 0, RMC status ``V`` (or mode ``N``), or empty coordinates -> ``NoFix``;
* a valid GGA/RMC -> ``Fix``; any other sentence (GSV, GSA, VTG, ...) -> ``None``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import monotonic
from typing import Protocol, runtime_checkable

import pynmea2

from .aio import sleep_unless
from .readers import Reader, SerialReader

log = logging.getLogger(__name__)

UTC = dt.timezone.utc


@dataclass(frozen=True)
class Fix:
    """One position. ``time`` is the receiver's UTC time when it has one; ``monotonic`` is
    when this process learnt of it, so ``age()`` is immune to wall-clock jumps."""

    lat: float
    long: float
    alt: float | None = None
    time: dt.datetime | None = None
    valid: bool = True  # False on a ``last_fix`` that is no longer current
    source: str | None = field(default=None, compare=False)  # "GGA", "RMC", "fixed", ...
    monotonic: float = field(default_factory=monotonic, compare=False)

    def age(self, now: float | None = None) -> float:
        """Seconds since this fix was received."""
        return (monotonic() if now is None else now) - self.monotonic


@dataclass(frozen=True)
class NoFix:
    """The receiver is talking but says it has no position (GGA quality 0, RMC status V)."""

    sentence: str
    time: dt.datetime | None = None


class NmeaError(ValueError):
    """A sentence that cannot be trusted: malformed, or its checksum is wrong."""


class NmeaChecksumError(NmeaError):
    pass


@runtime_checkable
class PositionSource(Protocol):
    """Where the device is now. ``run()`` does background work (returns at once if none).

    ``current()`` answers at once: a :class:`Fix` (the agent reads ``lat``, ``long``, ``alt``
    and ``valid``: a fix that is no longer current counts as none) or None.
    """

    def current(self) -> Fix | None: ...

    async def run(self) -> None: ...

    async def close(self) -> None: ...


# --- NMEA ------------------------------------------------------------------------------


def parse_nmea(line: str | bytes, *, ref: dt.datetime | None = None) -> Fix | NoFix | None:
    """Parse one NMEA 0183 sentence (checksum required).

    GGA carries only a time of day: with ``ref`` (the latest known UTC datetime, e.g. from
    RMC) it gets the date that puts it nearest to ``ref``, which also handles midnight;
    without ``ref`` the fix has ``time=None``.
    """
    if isinstance(line, bytes):
        try:
            line = line.decode("ascii")
        except UnicodeDecodeError as e:
            raise NmeaError(f"not ASCII: {line[:40]!r}") from e
    line = line.strip()
    if not line.startswith("$"):
        raise NmeaError(f"not an NMEA sentence: {line[:40]!r}")
    try:
        msg = pynmea2.parse(line, check=True)
    except pynmea2.ChecksumError as e:
        raise NmeaChecksumError(f"checksum: {line[:40]!r}") from e
    except pynmea2.SentenceTypeError:
        return None  # proprietary or unknown sentence: not ours
    except pynmea2.ParseError as e:
        raise NmeaError(f"unparseable: {line[:40]!r}") from e
    try:
        if isinstance(msg, pynmea2.GGA):
            return _from_gga(msg, ref)
        if isinstance(msg, pynmea2.RMC):
            return _from_rmc(msg)
    except (ValueError, TypeError, AttributeError) as e:
        raise NmeaError(f"malformed {msg.sentence_type}: {line[:60]!r}") from e
    return None


def _from_gga(msg: pynmea2.GGA, ref: dt.datetime | None) -> Fix | NoFix:
    tod = msg.timestamp
    when = _date_near(tod, ref) if tod is not None and ref is not None else None
    if not msg.gps_qual or not msg.lat or not msg.lon:
        return NoFix("GGA", when)
    alt = float(msg.altitude) if msg.altitude is not None and msg.altitude != "" else None
    return Fix(*_on_earth(float(msg.latitude), float(msg.longitude), alt), when, source="GGA")


def _from_rmc(msg: pynmea2.RMC) -> Fix | NoFix:
    when = msg.datetime.astimezone(UTC) if msg.datestamp and msg.timestamp else None
    if msg.status != "A" or getattr(msg, "mode_indicator", None) == "N" or not msg.lat or not msg.lon:
        return NoFix("RMC", when)
    return Fix(*_on_earth(float(msg.latitude), float(msg.longitude), None), when, source="RMC")


def _on_earth(lat: float, long: float, alt: float | None) -> tuple[float, float, float | None]:
    """A sentence whose checksum is right can still say latitude 95.5 or altitude NaN: malformed."""
    if not (-90.0 <= lat <= 90.0 and -180.0 <= long <= 180.0) or (alt is not None and not math.isfinite(alt)):
        raise ValueError(f"position off the earth: {lat}, {long}, alt {alt}")
    return lat, long, alt


def _date_near(tod: dt.time, ref: dt.datetime) -> dt.datetime:
    if tod.tzinfo is None:
        tod = tod.replace(tzinfo=UTC)
    ref = ref.astimezone(UTC)
    candidates = [dt.datetime.combine(ref.date() + dt.timedelta(days=d), tod) for d in (-1, 0, 1)]
    return min(candidates, key=lambda c: abs(c - ref))


class NmeaGps:
    """A serial NMEA GPS (GGA + RMC). Reconnects like any ``SerialReader``.

    RMC gives the date, GGA the altitude; a fix is the latest position from either. The fix
    is *lost* when the receiver reports no fix or has said nothing usable for ``max_age``
    seconds; ``last_fix`` still holds the last position (with ``valid=False``).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        baudrate: int = 9600,
        max_age: float = 5.0,
        reader: Reader | None = None,
        **serial_opts: object,
    ) -> None:
        if reader is None:
            if url is None:
                raise ValueError("NmeaGps needs a serial url or a reader")
            reader = SerialReader(url, baudrate=baudrate, framing="line", max_len=256, **serial_opts)  # type: ignore[arg-type]
        self.reader = reader
        self.max_age = max_age
        self.stats = {"sentences": 0, "fixes": 0, "no_fix": 0, "bad_checksum": 0, "malformed": 0, "ignored": 0}
        self._fix: Fix | None = None
        self._lost = True
        self._ref: dt.datetime | None = None  # latest RMC datetime, dates GGA
        self._alt: tuple[float, float] | None = None  # (alt, monotonic) from the last GGA

    def feed(self, line: bytes | str) -> Fix | NoFix | None:
        """Take one sentence; never raises on bad input (it is counted instead)."""
        self.stats["sentences"] += 1
        try:
            result = parse_nmea(line, ref=self._ref)
        except NmeaChecksumError:
            self.stats["bad_checksum"] += 1
            return None
        except NmeaError as e:
            self.stats["malformed"] += 1
            log.debug("gps: %s", e)
            return None
        if result is None:
            self.stats["ignored"] += 1
        elif isinstance(result, NoFix):
            self.stats["no_fix"] += 1
            if not self._lost:
                log.warning("gps: fix lost (%s reports no fix)", result.sentence)
            self._lost = True
            if result.sentence == "RMC" and result.time is not None:
                self._ref = result.time
        else:
            result = self._merge(result)
            self.stats["fixes"] += 1
            if self._lost and self._fix is not None:
                log.info("gps: fix regained")
            self._fix, self._lost = result, False
        return result

    def _merge(self, fix: Fix) -> Fix:
        if fix.source == "GGA":
            if fix.alt is not None:
                self._alt = (fix.alt, fix.monotonic)
            return fix
        # RMC: remember its datetime for dating GGA, borrow a recent GGA altitude
        if fix.time is not None:
            self._ref = fix.time
        if self._alt is not None and fix.monotonic - self._alt[1] <= self.max_age:
            return dataclasses.replace(fix, alt=self._alt[0])
        return fix

    @property
    def fix_lost(self) -> bool:
        """True until the first fix, and whenever there is no usable fix now."""
        return self.current() is None

    @property
    def last_fix(self) -> Fix | None:
        """The last position ever received; ``valid`` says whether it is still current."""
        if self._fix is None:
            return None
        return self._fix if self.current() is not None else dataclasses.replace(self._fix, valid=False)

    def current(self) -> Fix | None:
        if self._lost or self._fix is None or self._fix.age() > self.max_age:
            return None
        return self._fix

    async def run(self) -> None:
        async for line in self.reader.scans():
            self.feed(line)

    async def close(self) -> None:
        await self.reader.close()


# --- fixed and simulated ---------------------------------------------------------------


def _utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


class FixedPosition:
    """A platform validator: the position comes from configuration and never changes."""

    def __init__(
        self, lat: float, long: float, alt: float | None = None, *, clock: Callable[[], dt.datetime] = _utcnow
    ) -> None:
        if not (-90.0 <= lat <= 90.0 and -180.0 <= long <= 180.0):
            raise ValueError(f"position out of range: {lat}, {long}")
        self.lat, self.long, self.alt = lat, long, alt
        self._clock = clock

    def current(self) -> Fix:
        return Fix(self.lat, self.long, self.alt, self._clock(), source="fixed")

    async def run(self) -> None:
        return None

    async def close(self) -> None:
        return None


Waypoint = tuple[float, float] | tuple[float, float, float]


def _metres(lat1: float, long1: float, lat2: float, long2: float) -> float:
    """Equirectangular distance: exact enough between the waypoints of a simulated route."""
    x = math.radians(long2 - long1) * math.cos(math.radians((lat1 + lat2) / 2))
    return 6371000.0 * math.hypot(x, math.radians(lat2 - lat1))


class SimulatedRoute:
    """A bus driving through ``waypoints``, for the demo and tests.

    Each leg between two waypoints is split into ``steps_per_leg`` steps, interpolated
    linearly (fine over the short legs of a bus route). It moves one step per ``advance()``
    or, when ``tick`` is set, once per ``tick`` seconds inside ``run()``; it stops at the last
    waypoint unless ``loop``. Set ``fix_lost = True`` to drive through a tunnel. With ``speed_kmh``
    the fixes carry the receiver time of a bus driving at that speed (from the clock's time at the
    start), so a jump from stop to stop in one ``advance()`` is a drive, not a teleport.
    """

    def __init__(
        self,
        waypoints: Sequence[Waypoint],
        *,
        steps_per_leg: int = 1,
        loop: bool = False,
        tick: float | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
        speed_kmh: float | None = None,
    ) -> None:
        if speed_kmh is not None and not speed_kmh > 0:
            raise ValueError("speed_kmh must be > 0")
        if not waypoints:
            raise ValueError("a route needs at least one waypoint")
        if steps_per_leg < 1:
            raise ValueError("steps_per_leg must be >= 1")
        self.waypoints = [tuple(float(v) for v in w) for w in waypoints]
        self.steps_per_leg = steps_per_leg
        self.loop = loop
        self.tick = tick
        self.step = 0
        self.fix_lost = False
        self._clock = clock
        self._closed = asyncio.Event()
        self.speed_kmh = speed_kmh
        self._start = clock()
        self._driven_m = 0.0

    @property
    def total_steps(self) -> int:
        return (len(self.waypoints) - 1) * self.steps_per_leg

    @property
    def finished(self) -> bool:
        return not self.loop and self.step >= self.total_steps

    def advance(self, steps: int = 1) -> Fix:
        """Move on ``steps`` steps and return the new position."""
        total = self.total_steps
        before = self._position()
        if self.loop and total:
            self.step = (self.step + steps) % total
        else:
            self.step = min(self.step + steps, total)
        after = self._position()
        self._driven_m += _metres(before.lat, before.long, after.lat, after.long)
        return self._position()

    def current(self) -> Fix | None:
        return None if self.fix_lost else self._position()

    def _position(self) -> Fix:
        leg, k = divmod(self.step, self.steps_per_leg)
        a = self.waypoints[min(leg, len(self.waypoints) - 1)]
        b = self.waypoints[min(leg + 1, len(self.waypoints) - 1)]
        t = k / self.steps_per_leg
        lat = a[0] + (b[0] - a[0]) * t
        long = a[1] + (b[1] - a[1]) * t
        alt = a[2] + (b[2] - a[2]) * t if len(a) > 2 and len(b) > 2 else None
        when = (self._clock() if self.speed_kmh is None
                else self._start + dt.timedelta(seconds=self._driven_m / (self.speed_kmh / 3.6)))
        return Fix(lat, long, alt, when, source="simulated")

    async def run(self) -> None:
        if self.tick is None:
            return
        while not self.finished and not await sleep_unless(self._closed, self.tick):
            self.advance()

    async def close(self) -> None:
        self._closed.set()
