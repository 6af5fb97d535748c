"""Where, when and as what a scan happens: the Context every check reads, and the Policy.

Context comes from providers (clock, GPS or fixed position, stop/zone map, service plan,
the device's own config); the engine never looks at hardware itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
    next_stop_area: str | None = None
    mode_of_transport: str | None = None
    service: Service | None = None
    operator_pid: int | None = None  # the participant the stop areas, zones and services belong to
    operating_day: date | None = None
    boot_id: str | None = None  # with monotonic: time that a wall-clock jump cannot bend
    monotonic: float | None = None

    def at(self, time: datetime) -> "Context":
        return replace(self, time=time)


@dataclass(frozen=True)
class Policy:
    passback_window_s: float = 600.0
    max_speed_kmh: float = 200.0
    fraud_min_distance_m: float = 1000.0  # below this, GPS noise and stop spacing dominate
    device_time_window_s: float = 30.0
    require_device_time: bool = True  # a device signature without 't' could be a screenshot
    issuer_algs: frozenset[str] = field(default_factory=lambda: frozenset({"ES256"}))
    timezone: str = "Europe/Stockholm"
    operating_day_starts_h: int = 4  # a night bus at 01:30 belongs to the day before


def operating_day(time: datetime, policy: Policy) -> date:
    try:
        zone = ZoneInfo(policy.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = None
    local = time.astimezone(zone) if zone else time
    return (local - timedelta(hours=policy.operating_day_starts_h)).date()
