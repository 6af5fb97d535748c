"""The operator's rules for a scan: windows, speeds, algorithms, the operating day, and which
wallets must stamp the time into their device signature.

A Policy is fixed for the life of an engine (it comes from the ``[policy]`` config section);
the checks read it, they never change it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


PassbackScope = Literal["device", "stop-area", "operator"]


@dataclass(frozen=True)
class Policy:
    passback_window_s: float = 600.0
    # Whose earlier acceptances make a passback: this device's only; also other devices' at the
    # same stop area (a platform's gates); or every device's (the uses feed brings them).
    passback_scope: PassbackScope = "device"
    max_speed_kmh: float = 200.0
    fraud_min_distance_m: float = 1000.0  # below this, GPS noise and stop spacing dominate
    device_time_window_s: float = 30.0
    # A device signature without 't' cannot be told from a screenshot replayed within the
    # ticket's validity; but real wallets send none (the public pid-60 sample has {alg, did, kid}),
    # so 't' is required only for the wallets named here, by pid (see device_time_required).
    require_device_time: bool = False
    require_device_time_by_pid: Mapping[str, bool] = field(default_factory=dict)
    issuer_algs: frozenset[str] = field(default_factory=lambda: frozenset({"ES256"}))
    timezone: str = "Europe/Stockholm"
    operating_day_starts_h: int = 4  # a night bus at 01:30 belongs to the day before

    def device_time_required(self, pid: str) -> bool:
        """Whether the wallet of participant ``pid`` must put 't' in its device header: the
        per-pid setting when there is one, else the default."""
        return self.require_device_time_by_pid.get(pid, self.require_device_time)

    @cached_property
    def zone(self) -> ZoneInfo | None:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return None


def operating_day(time: datetime, policy: Policy) -> date:
    zone = policy.zone
    local = time.astimezone(zone) if zone else time
    return (local - timedelta(hours=policy.operating_day_starts_h)).date()
