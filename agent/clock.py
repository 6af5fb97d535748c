"""Wall clock against monotonic clock: a device whose clock jumps by hours must notice.

Between two readings the monotonic clock is the truth about elapsed time; when the wall
clock moved by more than ``tolerance_s`` differently, the wall clock jumped (NTP after a
long offline period, a dead RTC battery, tampering) and the jump is reported.
"""
from __future__ import annotations

import logging
from collections import deque
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from mtb.timeutil import format_extended, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClockJump:
    seconds: float  # positive: the wall clock jumped forwards
    at: datetime


class ClockWatch:
    def __init__(self, tolerance_s: float = 120.0, *, wall: Callable[[], datetime] = utcnow,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.tolerance_s = tolerance_s
        self._wall, self._monotonic = wall, monotonic
        self._last = (wall(), monotonic())
        self.jumps: deque[ClockJump] = deque(maxlen=100)  # the latest ones, for the operator
        self.jump_count = 0

    def read(self) -> tuple[datetime, float]:
        """Now, by both clocks; records a jump when they disagree beyond the tolerance."""
        wall, mono = self._wall(), self._monotonic()
        last_wall, last_mono = self._last
        drift = (wall - last_wall).total_seconds() - (mono - last_mono)
        if abs(drift) > self.tolerance_s:
            jump = ClockJump(drift, wall)
            self.jumps.append(jump)
            self.jump_count += 1
            log.warning("wall clock jumped %+.0f s (monotonic time disagrees); passback and fraud use "
                        "monotonic time within this boot", drift)
        self._last = (wall, mono)
        return wall, mono


@dataclass
class ClockFloor:
    """The earliest time the device may believe it is: it never decides with a clock below it.

    The floor is the later of the server's ``Date`` at the last successful contact and the newest
    event recorded since then, less ``tolerance_s`` (the server's second-resolution ``Date``, the
    skew allowed before an alarm, a clock slewed back by NTP). A wall clock below it has been set
    back (a dead RTC battery, a bad NTP answer): a decision with it would call expired tickets
    valid and a passenger's second scan a passback "0 s ago". Only events since the last contact
    count: a clock that ran fast and recorded events in the future is forgiven by the next
    contact with the server, whose time is the authority.
    """

    tolerance_s: float = 60.0
    server_time: datetime | None = None
    newest_event: datetime | None = None

    def note_event(self, at: datetime) -> None:
        if self.newest_event is None or at > self.newest_event:
            self.newest_event = at

    def note_server(self, server_time: datetime) -> None:
        self.server_time, self.newest_event = server_time, None

    def floor(self) -> tuple[datetime, str] | None:
        """The floor before the tolerance, and what set it (the server's time on a tie). Asked
        twice per scan: plain comparisons, no lists."""
        server, newest = self.server_time, self.newest_event
        if newest is not None and (server is None or newest > server):
            return newest, "the newest recorded event"
        return None if server is None else (server, "the server's time at the last contact")

    def below(self, now: datetime) -> bool:
        floor = self.floor()
        return floor is not None and (floor[0] - now).total_seconds() > self.tolerance_s

    def problem(self, now: datetime) -> str | None:
        """Why ``now`` cannot be trusted, or None."""
        floor = self.floor()
        if floor is None or (floor[0] - now).total_seconds() <= self.tolerance_s:
            return None
        return (f"device clock {format_extended(now)} is before {floor[1]} ({format_extended(floor[0])}): "
                "out of service until the clock is right")
