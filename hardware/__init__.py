"""Hardware adapters behind small protocols (the agent's ports; they know nothing of tickets).

* ``Reader``: raw scan bytes in (``SerialReader``, ``SimulatedReader``).
* ``PositionSource``: where the device is (``NmeaGps``, ``FixedPosition``, ``SimulatedRoute``).
* ``Feedback``: colour and text out (``ConsoleFeedback``, ``SerialFeedback``, ``SimulatedFeedback``).

The ``make_*`` factories build one from a config section, e.g.
``make_reader(**{"kind": "serial", "url": "/dev/ttyUSB0", "framing": "line"})``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .feedback import (
    COLOUR_CODES,
    Colour,
    ConsoleFeedback,
    Feedback,
    SerialFeedback,
    Shown,
    SimulatedFeedback,
    encode_message,
)
from .position import (
    Fix,
    FixedPosition,
    NmeaChecksumError,
    NmeaError,
    NmeaGps,
    NoFix,
    PositionSource,
    SimulatedRoute,
    parse_nmea,
)
from .readers import LengthPrefixedFramer, LineFramer, Reader, SerialReader, SimulatedReader

__all__ = [
    "COLOUR_CODES",
    "Colour",
    "ConsoleFeedback",
    "Feedback",
    "Fix",
    "FixedPosition",
    "LengthPrefixedFramer",
    "LineFramer",
    "NmeaChecksumError",
    "NmeaError",
    "NmeaGps",
    "NoFix",
    "PositionSource",
    "Reader",
    "SerialFeedback",
    "SerialReader",
    "Shown",
    "SimulatedFeedback",
    "SimulatedReader",
    "SimulatedRoute",
    "encode_message",
    "make_feedback",
    "make_position",
    "make_reader",
    "parse_nmea",
]


def make_reader(kind: str, **opts: Any) -> Reader:
    """``serial`` -> SerialReader(url, ...); ``simulated`` -> SimulatedReader(items | file=path, ...)."""
    if kind == "serial":
        return SerialReader(**opts)
    if kind == "simulated":
        file = opts.pop("file", None)
        if file is not None:
            return SimulatedReader.from_file(Path(file), **opts)
        return SimulatedReader(**opts)
    raise ValueError(f"unknown reader kind {kind!r}; expected 'serial' or 'simulated'")


def make_position(kind: str, **opts: Any) -> PositionSource:
    """``nmea`` -> NmeaGps(url, ...); ``fixed`` -> FixedPosition(lat, long, alt); ``route`` -> SimulatedRoute(waypoints, ...)."""
    if kind in ("nmea", "gps"):
        return NmeaGps(**opts)
    if kind == "fixed":
        return FixedPosition(**opts)
    if kind in ("route", "simulated"):
        return SimulatedRoute(**opts)
    raise ValueError(f"unknown position kind {kind!r}; expected 'nmea', 'fixed' or 'route'")


def make_feedback(kind: str, **opts: Any) -> Feedback:
    """``console`` -> ConsoleFeedback; ``serial`` -> SerialFeedback(url, ...); ``simulated`` -> SimulatedFeedback."""
    if kind == "console":
        return ConsoleFeedback(**opts)
    if kind == "serial":
        return SerialFeedback(**opts)
    if kind == "simulated":
        return SimulatedFeedback(**opts)
    raise ValueError(f"unknown feedback kind {kind!r}; expected 'console', 'serial' or 'simulated'")
