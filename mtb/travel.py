"""Travel between two sightings of one ticket: the great-circle distance and the speed it
implies, shared by the device's fraud check and the server's ``/fraudcheck``.

A copied ticket shows itself by being used in two places faster than anyone can travel
between them. Short hops and slow speeds are noise (GPS, stop spacing, clocks): BoB's
Validation API says a distance of at most 1 km or a speed of at most 5 km/h renders 0 km/h.
"""
from __future__ import annotations

import math

EARTH_RADIUS_M = 6371000.0
NOISE_DISTANCE_M = 1000.0
NOISE_SPEED_KMH = 5.0


def distance_m(lat1: float, long1: float, lat2: float, long2: float) -> float:
    """Great-circle distance (haversine) on a 6371 km sphere."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(long2 - long1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, a)))


def velocity_kmh(metres: float, seconds: float) -> float:
    """BoB's fraud-check velocity: 0 for at most 1 km or at most 5 km/h; otherwise the distance
    over the time, with at least one second between the sightings (JSON has no infinity)."""
    if metres <= NOISE_DISTANCE_M:
        return 0.0
    speed = metres / max(abs(seconds), 1.0) * 3.6
    return 0.0 if speed <= NOISE_SPEED_KMH else speed
