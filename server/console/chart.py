"""The activity chart's geometry: validations per minute, stacked by result code.

A pure function from counts to rectangles and ticks; the template (``activity.html``) draws
them as an SVG the server sends, with a text title on every bar and a table of the same
figures, so the page needs no script and a screen reader gets the numbers.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from mtb.timeutil import parse_time

from .codes import result_colour, result_name

WIDTH, HEIGHT = 960, 300
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 12, 28  # margins: y labels, x labels
MAX_X_TICKS = 8
TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720)  # minutes between x labels


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    minute: datetime
    code: int | None
    count: int


@dataclass(frozen=True)
class Tick:
    at: float  # x or y in the SVG
    minute: datetime | None = None  # x ticks
    value: int | None = None  # y ticks


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    top: int
    bottom: int  # the x axis' y
    bars: list[Bar]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    legend: list[tuple[str, str]]  # (colour, words) of the codes present
    total: int


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50 ... that is at least ``value`` (at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def stacked_minutes(counts: Iterable[tuple[str, int | None, int]], start: datetime, minutes: int) -> Chart:
    """``counts`` as :meth:`~server.console.queries.ConsoleQueries.validations_by_minute`
    gives them (UTC minute text, code, count); ``start`` is the first minute (UTC, whole minute)."""
    per_minute: dict[int, dict[int | None, int]] = defaultdict(dict)
    for minute_text, code, count in counts:
        index = int((parse_time(minute_text + ":00Z") - start).total_seconds() // 60)
        if 0 <= index < minutes:
            per_minute[index][code] = per_minute[index].get(code, 0) + count
    peak = max((sum(codes.values()) for codes in per_minute.values()), default=0)
    top_value = nice_ceiling(peak)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(minutes, 1)
    bars = []
    present: set[int | None] = set()
    for index in sorted(per_minute):
        y = float(TOP + plot_h)
        for code in sorted(per_minute[index], key=lambda c: (c is None, c)):
            count = per_minute[index][code]
            height = plot_h * count / top_value
            y -= height
            present.add(code)
            bars.append(Bar(x=LEFT + index * slot, y=y, width=max(slot * 0.85, 0.5), height=height,
                            colour=result_colour(code), minute=start + timedelta(minutes=index), code=code,
                            count=count))
    step = next((s for s in TICK_STEPS if minutes / s <= MAX_X_TICKS), TICK_STEPS[-1])
    first = (-_minute_of_day(start)) % step  # ticks on round local-independent minutes (UTC multiples)
    x_ticks = [Tick(at=LEFT + i * slot, minute=start + timedelta(minutes=i)) for i in range(first, minutes, step)]
    y_ticks = [Tick(at=TOP + plot_h * (1 - f / 4), value=top_value * f // 4) for f in range(5)
               if top_value * f % 4 == 0]
    legend = [(result_colour(c), result_name(c)) for c in sorted(present, key=lambda c: (c is None, c))]
    return Chart(WIDTH, HEIGHT, LEFT, TOP, TOP + plot_h, bars, x_ticks, y_ticks, legend,
                 sum(b.count for b in bars))


def _minute_of_day(moment: datetime) -> int:
    return moment.hour * 60 + moment.minute
