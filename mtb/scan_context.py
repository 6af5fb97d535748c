"""Where, when and as what a scan happens: the Context every check reads.

Context comes from providers (clock, GPS or fixed position, stop/zone map, service plan,
the device's own config); the engine never looks at hardware itself. The server's online
validation makes one from the event a device reports. (The server's request context is
another thing: ``server/context.py``.)
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

DeviceMode = Literal["validation", "inspection"]


@dataclass(frozen=True)
class Geo:
    lat: float
    long: float
    alt: float | None = None


@dataclass(frozen=True)
class Service:
    service_id: str
    trip_id: str | None = None
    block_id: str | None = None


@dataclass(frozen=True)
class Validator:
    validator_id: str
    location: str | None = None  # vehicle, platform, handheld
    sublocation: str | None = None  # e.g. door 2


@dataclass(frozen=True)
class Context:
    time: datetime
    validator: Validator
    mode: DeviceMode = "validation"
    geo: Geo | None = None
    position_stale: bool = False  # the fix was lost; geo/stop/zone are the last known ones
    zone: str | None = None
    stop_area: str | None = None
    mode_of_transport: str | None = None
    service: Service | None = None
    operator_pid: int | None = None  # the participant the stop areas, zones and services belong to
    operating_day: date | None = None
    boot_id: str | None = None  # with monotonic: time that a wall-clock jump cannot bend
    monotonic: float | None = None
