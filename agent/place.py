"""Where the device is: fixes checked before they are believed, then mapped to a stop area and zone.

A position source may hand over a fix no vehicle can be at (latitude 95.5, a NaN altitude) or one
that jumps kilometres in a second (multipath in a street canyon). Believed, the first is put in
events the server refuses (parked for ever), the second moves the validator into another zone
(result 2 for a valid ticket) or makes a passenger's earlier scan look like fraud (result 9).
So an impossible fix is no fix, and a jump faster than ``max_speed_kmh`` is flagged and not used
until ``CONFIRM_FIXES`` fixes in a row agree with it (a real relocation, e.g. after a long tunnel,
is taken then). Meanwhile the last trusted place stands, marked stale, as when the fix is lost.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime

from hardware import Fix, PositionSource

from mtb.travel import distance_m
from mtb.scan_context import Geo
from .stops import StopArea, StopLocator

log = logging.getLogger(__name__)

CONFIRM_FIXES = 3  # fixes in a row that must agree before a jump is believed
JUMP_MIN_M = 250.0  # below this, GPS noise and a bus's own length dominate


@dataclass(frozen=True)
class Place:
    geo: Geo | None
    stale: bool  # the fix is lost or not trusted: geo, stop area and zone are the last trusted ones
    stop_area: StopArea | None


def implausible(fix: Fix) -> str | None:
    """Why no vehicle can be at this fix, or None."""
    if not (math.isfinite(fix.lat) and math.isfinite(fix.long)) or (fix.alt is not None and not math.isfinite(fix.alt)):
        return f"non-finite position ({fix.lat}, {fix.long}, alt {fix.alt})"
    if not (-90.0 <= fix.lat <= 90.0 and -180.0 <= fix.long <= 180.0):
        return f"position out of range ({fix.lat}, {fix.long})"
    return None


def _seconds(earlier: Fix, later: Fix) -> float:
    """By the receiver's clock when both fixes carry its time, else by when they arrived."""
    if isinstance(earlier.time, datetime) and isinstance(later.time, datetime):
        return (later.time - earlier.time).total_seconds()
    return getattr(later, "monotonic", time.monotonic()) - getattr(earlier, "monotonic", time.monotonic())


def jump_speed_kmh(earlier: Fix, later: Fix, max_speed_kmh: float) -> float | None:
    """The speed between two fixes when it is more than a vehicle can do, else None."""
    metres = distance_m(earlier.lat, earlier.long, later.lat, later.long)
    if metres < JUMP_MIN_M:
        return None
    seconds = _seconds(earlier, later)
    speed = math.inf if seconds <= 0 else metres / seconds * 3.6
    return speed if speed > max_speed_kmh else None


class PositionTracker:
    """Turns fixes into a place (position, stop area, zone); keeps the last trusted one when the
    fix is lost, impossible or jumping. ``max_speed_kmh`` None: jumps are not looked for."""

    def __init__(self, source: PositionSource | None, locator: StopLocator | None, *,
                 max_speed_kmh: float | None = None) -> None:
        self.source = source
        self.locator = locator
        self.max_speed_kmh = max_speed_kmh
        self.stats = {"implausible": 0, "jumps": 0}
        self._trusted: Fix | None = None
        self._geo: Geo | None = None
        self._stop: StopArea | None = None
        self._candidate: tuple[Fix, int] | None = None  # a jumped-to position and how many fixes agree
        self._complaint: str | None = None  # logged once per episode, not once per fix

    def place(self) -> Place:
        fix = self.source.current() if self.source is not None else None
        if fix is None or not getattr(fix, "valid", True) or not self._believable(fix):
            return Place(self._geo, self._geo is not None, self._stop)
        self._complain(None)
        self._trusted = fix
        self._geo = Geo(fix.lat, fix.long, fix.alt)
        if self.locator is not None:
            hit = self.locator.nearest(fix.lat, fix.long)
            if hit is not None:
                self._stop = hit[0]  # between stops, the bus is still "after" the last one
        return Place(self._geo, False, self._stop)

    def _believable(self, fix: Fix) -> bool:
        problem = implausible(fix)
        if problem is not None:
            self.stats["implausible"] += 1
            self._complain(f"position: {problem}; treated as no fix")
            return False
        if self.max_speed_kmh is None or self._trusted is None or fix == self._trusted:
            return True
        speed = jump_speed_kmh(self._trusted, fix, self.max_speed_kmh)
        if speed is None:
            self._candidate = None
            return True
        return self._confirmed(fix, speed)

    def _confirmed(self, fix: Fix, speed: float) -> bool:
        """A jump is believed once ``CONFIRM_FIXES`` fixes in a row agree with where it went."""
        assert self.max_speed_kmh is not None
        candidate, count = self._candidate or (fix, 0)
        agrees = count == 0 or jump_speed_kmh(candidate, fix, self.max_speed_kmh) is None
        self._candidate = (fix, count + 1 if agrees else 1)
        if self._candidate[1] >= CONFIRM_FIXES:
            log.info("position: the jump to (%.5f, %.5f) is confirmed by %d fixes; following it",
                     fix.lat, fix.long, CONFIRM_FIXES)
            self._candidate = None
            return True
        self.stats["jumps"] += 1
        km = distance_m(self._trusted.lat, self._trusted.long, fix.lat, fix.long) / 1000  # type: ignore[union-attr]
        self._complain(f"position: fix jumped {km:.1f} km at {'∞' if speed == math.inf else f'{speed:.0f}'} km/h "
                       f"(max {self.max_speed_kmh:.0f}); keeping the last trusted place until it is confirmed")
        return False

    def _complain(self, text: str | None) -> None:
        if text is not None and self._complaint is None:
            log.warning("%s", text)
        self._complaint = text
