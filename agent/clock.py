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

from mtb.timeutil import utcnow

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
