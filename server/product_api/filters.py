"""Which products a filter offers (BoB ``productFilter``), as pure functions over a catalogue.

Spatial filters give *zone sets* a journey needs, one per alternative: a ``group`` of zones is
one set (the zones together); a ``route`` of stops and zones gives one set per way of reading
it (a stop on a zone border is in either zone), each the zones on the shortest way through
the zone system from one route point to the next. Both may be given; their alternatives are
concatenated, as the API says. For each zone set the offer is the products valid in all its
zones and in no more than they must: a product whose zones strictly include those of another
matching product of the same kind (fare, product and traveller category) is left out (a
one-zone journey is not offered the three-zone ticket too). Category filters (fare, product,
traveller: each "any of") apply before that.

Errors, as BoB clients expect them: an unknown zone or stop is a 404; zones of different zone
systems in one selection, an unsupported filter type, or a route too ambiguous to enumerate
are a 422 naming the member.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import ApiError, field_error
from ..models import Id
from .catalogue import Catalogue, Product

MAX_READINGS = 1024  # ways of reading a route (border stops multiply them)
UNSUPPORTED = ("area", "travellersPerCategory", "productProperties", "adjacencies", "temporal")
ZONE = "zone"

IdList = Annotated[list[Id], Field(min_length=1, max_length=100)]


class GroupRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Id
    id: Id


class RoutePoint(BaseModel):
    """One point of a route: a stop, a group (zone), or a coordinate (not supported here)."""

    model_config = ConfigDict(extra="forbid")
    stopId: Id | None = None
    groupId: GroupRef | None = None
    coordinate: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one(self) -> "RoutePoint":
        if sum(x is not None for x in (self.stopId, self.groupId, self.coordinate)) != 1:
            raise ValueError("a route point is exactly one of stopId, groupId, coordinate")
        return self


class GroupFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    groupType: Id
    groupIds: IdList


class ProductFilter(BaseModel):
    """``POST /product`` (BoB ``productFilter``)."""

    model_config = ConfigDict(extra="forbid")

    route: Annotated[list[RoutePoint], Field(min_length=1, max_length=50)] | None = None
    group: GroupFilter | None = None
    fareCategoryIds: IdList | None = None
    productCategoryIds: IdList | None = None
    travellerCategoryIds: IdList | None = None
    area: Any = None
    travellersPerCategory: Any = None
    productProperties: Any = None
    adjacencies: Any = None
    temporal: Any = None


@dataclass(frozen=True)
class Selection:
    """A filter resolved against the catalogue: category sets (None: any) and the zone sets of
    the spatial alternatives (None: no spatial filter)."""

    fare: frozenset[str] | None = None
    product: frozenset[str] | None = None
    traveller: frozenset[str] | None = None
    zone_sets: tuple[frozenset[str], ...] | None = None


def _ids(values: Iterable[str] | None) -> frozenset[str] | None:
    return frozenset(values) if values is not None else None


def unsupported(field: str, what: str) -> ApiError:
    return field_error(field, f"{what} is not supported by this server", code="unsupported_filter")


def _known_zone(catalogue: Catalogue, zone: str, field: str) -> str:
    if catalogue.zone_system(zone) is None:
        raise ApiError(404, f"{field}: unknown zone {zone!r}", code="unknown_zone",
                       details=[{"field": field, "message": f"unknown zone {zone!r}"}])
    return zone


def _one_system(catalogue: Catalogue, zones: Iterable[str], field: str) -> None:
    systems = {catalogue.zone_system(z) for z in zones}
    if len(systems) > 1:
        raise field_error(field, f"zones of different zone systems ({', '.join(sorted(map(str, systems)))}) "
                                 "cannot be combined", code="mixed_zone_systems")


def group_zones(catalogue: Catalogue, group: GroupFilter) -> frozenset[str]:
    if group.groupType != ZONE:
        raise unsupported("group.groupType", f"group type {group.groupType!r}")
    zones = [_known_zone(catalogue, z, f"group.groupIds[{i}]") for i, z in enumerate(group.groupIds)]
    _one_system(catalogue, zones, "group.groupIds")
    return frozenset(zones)


def _point_zones(catalogue: Catalogue, point: RoutePoint, field: str) -> list[str]:
    if point.stopId is not None:
        stop = catalogue.stop(point.stopId)
        if stop is None:
            raise ApiError(404, f"{field}.stopId: unknown stop {point.stopId!r}", code="unknown_stop",
                           details=[{"field": f"{field}.stopId", "message": f"unknown stop {point.stopId!r}"}])
        return list(stop.zones)
    if point.groupId is not None:
        if point.groupId.type != ZONE:
            raise unsupported(f"{field}.groupId.type", f"group type {point.groupId.type!r}")
        return [_known_zone(catalogue, point.groupId.id, f"{field}.groupId.id")]
    raise unsupported(f"{field}.coordinate", "a route point by coordinate")


def route_zone_sets(catalogue: Catalogue, route: Sequence[RoutePoint], field: str = "route") -> list[frozenset[str]]:
    """One zone set per way of reading the route, in order, without repeats."""
    choices = [_point_zones(catalogue, point, f"{field}[{i}]") for i, point in enumerate(route)]
    readings = 1
    for zones in choices:
        readings *= len(zones)
    if readings > MAX_READINGS:
        raise field_error(field, f"{readings} ways to read this route (at most {MAX_READINGS})",
                          code="route_too_ambiguous")
    sets: list[frozenset[str]] = []
    for reading in itertools.product(*choices):
        if len({catalogue.zone_system(z) for z in reading}) > 1:
            continue  # this reading crosses zone systems; another may not
        zones = {reading[0]}
        for a, b in zip(reading, reading[1:]):
            zones.update(catalogue.path(a, b))
        if frozenset(zones) not in sets:
            sets.append(frozenset(zones))
    if not sets:
        _one_system(catalogue, [z for zones in choices for z in zones], field)
    return sets


def resolve(catalogue: Catalogue, fltr: ProductFilter) -> Selection:
    for name in UNSUPPORTED:
        if getattr(fltr, name) is not None:
            raise unsupported(name, f"the {name} filter")
    zone_sets: list[frozenset[str]] | None = None
    if fltr.group is not None:
        zone_sets = [group_zones(catalogue, fltr.group)]
    if fltr.route is not None:
        zone_sets = (zone_sets or []) + route_zone_sets(catalogue, fltr.route)
    return Selection(_ids(fltr.fareCategoryIds), _ids(fltr.productCategoryIds), _ids(fltr.travellerCategoryIds),
                     tuple(zone_sets) if zone_sets is not None else None)


def _in(value: str | None, allowed: frozenset[str] | None) -> bool:
    return allowed is None or value in allowed


def _covers(product: Product, zones: frozenset[str]) -> bool:
    return product.zones is None or zones <= set(product.zones)


def _kind(product: Product) -> tuple[str | None, str | None, str | None]:
    return product.fareCategoryId, product.productCategoryId, product.travellerCategoryId


def _narrower(a: Product, b: Product) -> bool:
    """``a`` is of ``b``'s kind and valid in strictly fewer zones (no zones: valid everywhere)."""
    if a.zones is None or _kind(a) != _kind(b):
        return False
    return b.zones is None or set(a.zones) < set(b.zones)


def offer(catalogue: Catalogue, selection: Selection) -> list[Product]:
    candidates = [p for p in catalogue.products
                  if _in(p.fareCategoryId, selection.fare) and _in(p.productCategoryId, selection.product)
                  and _in(p.travellerCategoryId, selection.traveller)]
    if selection.zone_sets is None:
        return candidates
    offered: dict[str, Product] = {}
    for zones in selection.zone_sets:
        covering = [p for p in candidates if _covers(p, zones)]
        for product in covering:
            if not any(_narrower(other, product) for other in covering):
                offered.setdefault(product.productId, product)
    return list(offered.values())
