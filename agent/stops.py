"""Stop areas and zones from GTFS, and the map from a position to the stop area it is at.

A stop area is a station (``location_type`` 1) or a stop without a parent station; a
platform's position counts for its station. A station without its own ``zone_id`` takes the
zone most of its platforms have.
"""
from __future__ import annotations

import csv
import io
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

DEFAULT_RADIUS_M = 150.0
# The sample network the simulator drives (route 17, zones A-C); package data, so an installed agent has it.
SAMPLE_STOPS = Path(__file__).resolve().parent / "sample" / "stops.txt"


class GtfsError(ValueError):
    """A stops.txt that cannot be read as GTFS."""


@dataclass(frozen=True)
class StopArea:
    stop_area_id: str
    name: str
    lat: float
    long: float
    zone_id: str | None


def parse_stops(text: str) -> list[StopArea]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = {"stop_id", "stop_lat", "stop_lon"} - set(reader.fieldnames or [])
    if missing:
        raise GtfsError(f"stops.txt lacks column(s) {', '.join(sorted(missing))}")
    areas: dict[str, StopArea] = {}
    child_zones: dict[str, Counter[str]] = {}
    children: dict[str, list[tuple[float, float]]] = {}
    for line, row in enumerate(reader, start=2):
        stop_id = (row.get("stop_id") or "").strip()
        location_type = (row.get("location_type") or "0").strip() or "0"
        parent = (row.get("parent_station") or "").strip()
        zone = (row.get("zone_id") or "").strip() or None
        if not stop_id or location_type not in ("0", "1"):
            continue  # entrances, nodes and boarding areas are not stop areas
        try:
            lat, long = float(row["stop_lat"]), float(row["stop_lon"])
        except (TypeError, ValueError):
            raise GtfsError(f"stops.txt line {line}: bad stop_lat/stop_lon") from None
        if not (-90 <= lat <= 90 and -180 <= long <= 180):
            raise GtfsError(f"stops.txt line {line}: position out of range")
        if parent and location_type == "0":
            if zone:
                child_zones.setdefault(parent, Counter())[zone] += 1
            children.setdefault(parent, []).append((lat, long))
            continue
        areas[stop_id] = StopArea(stop_id, (row.get("stop_name") or stop_id).strip(), lat, long, zone)
    for area_id, zones in child_zones.items():
        area = areas.get(area_id)
        if area is not None and area.zone_id is None:
            areas[area_id] = StopArea(area.stop_area_id, area.name, area.lat, area.long, zones.most_common(1)[0][0])
    return list(areas.values())


def load_stops(path: str | Path) -> list[StopArea]:
    try:
        return parse_stops(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise GtfsError(f"cannot read {path}: {exc}") from exc


def approx_distance_m(lat1: float, long1: float, lat2: float, long2: float) -> float:
    """Equirectangular distance: exact enough within a stop radius, and cheap."""
    x = math.radians(long2 - long1) * math.cos(math.radians((lat1 + lat2) / 2))
    y = math.radians(lat2 - lat1)
    return 6371000.0 * math.hypot(x, y)


class StopLocator:
    """The nearest stop area within a radius of a position."""

    def __init__(self, areas: list[StopArea], radius_m: float = DEFAULT_RADIUS_M) -> None:
        self.areas = areas
        self.radius_m = radius_m

    def nearest(self, lat: float, long: float) -> tuple[StopArea, float] | None:
        best: tuple[StopArea, float] | None = None
        for area in self.areas:
            if abs(area.lat - lat) > 0.05:  # ~5 km: skip the trigonometry for far stops
                continue
            metres = approx_distance_m(lat, long, area.lat, area.long)
            if metres <= self.radius_m and (best is None or metres < best[1]):
                best = (area, metres)
        return best
