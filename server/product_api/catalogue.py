"""The product catalogue: what the operator sells, in ``products.json`` in the data directory
(a sample in ``agent/sample/products.json``; the operator writes and edits it, the server re-reads
it when it changes).

::

    {"zoneSystems": [{"zoneSystemId": "vt", "zones": ["820", "821", "822"],
                      "links": [["820", "821"], ["821", "822"]]}],     # default: zones in a line
     "stops": [{"stopId": "7417164", "name": "Lerum", "zones": ["820", "821"]}],  # border stop
     "fareCategories": [{"fareCategoryId": "day", "fareCategoryDescription": "Day fare"}],
     "productCategories": [{"productCategoryId": "single", "productCategoryDescription": "..."}],
     "travellerCategories": [{"travellerCategoryId": "a", "travellerCategoryDescription": "Adult"}],
     "products": [BoB product, ...]}

A product is BoB's ``product`` as served by ``GET /product`` (members the server does not use
are served as written) with what issuing needs: ``validityPeriod`` (ISO 8601 duration in
weeks, days, hours, minutes, seconds), ``fares`` in one currency (the ticket's fare is their
sum), the zones (``spatialValidity.groups`` of ``groupType`` ``zone``, one zone system) and
stop areas (``groupType`` ``stopArea``) it is valid in (none: everywhere), and one member of
this server's own, ``modesOfTransport`` (the MTB's ``mot``; none: every mode).

The catalogue is checked as a whole when it is read (ids unique, every category, zone and
stop a product or stop names exists, zones of one system per product), so a request never
meets a half-valid catalogue.
"""
from __future__ import annotations

import re
from collections import deque
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictStr, model_validator

from ..models import Fare, Id

MAX_ZONES = 10_000
MAX_PRODUCTS = 10_000
MIN_VALIDITY, MAX_VALIDITY = timedelta(seconds=60), timedelta(days=400)
_DURATION = re.compile(r"^P(?:(\d{1,4})W)?(?:(\d{1,5})D)?(?:T(?:(\d{1,6})H)?(?:(\d{1,7})M)?(?:(\d{1,9})S)?)?$")


def parse_duration(text: str) -> timedelta:
    """An ISO 8601 duration of fixed length (``PT90M``, ``P30D``, ``P1DT12H``); years and months
    are refused, they have no fixed length."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None or text in ("P", "PT") or text.endswith("T"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration in W, D, H, M, S (e.g. PT90M, P30D)")
    weeks, days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ZoneSystem(_Strict):
    zoneSystemId: Id
    zones: Annotated[list[Id], Field(min_length=1, max_length=MAX_ZONES)]
    links: list[tuple[Id, Id]] | None = None  # adjacent zones; None: the zones form a line, in order

    def neighbours(self) -> dict[str, set[str]]:
        pairs = self.links if self.links is not None else list(zip(self.zones, self.zones[1:]))
        graph: dict[str, set[str]] = {z: set() for z in self.zones}
        for a, b in pairs:
            graph[a].add(b)
            graph[b].add(a)
        return graph


class Stop(_Strict):
    stopId: Id
    name: StrictStr | None = None
    zones: Annotated[list[Id], Field(min_length=1, max_length=20)]


class FareCategory(_Strict):
    fareCategoryId: Id
    fareCategoryDescription: StrictStr


class ProductCategory(_Strict):
    productCategoryId: Id
    productCategoryDescription: StrictStr


class TravellerCategory(_Strict):
    travellerCategoryId: Id
    travellerCategoryDescription: StrictStr


class Group(BaseModel):
    model_config = ConfigDict(extra="allow")
    groupType: Id
    groupIds: Annotated[list[Id], Field(min_length=1, max_length=MAX_ZONES)]


class SpatialValidity(BaseModel):
    model_config = ConfigDict(extra="allow")
    groups: list[Group] | None = None


class Product(BaseModel):
    """One product (BoB ``product``); members beyond those below are kept and served."""

    model_config = ConfigDict(extra="allow")

    productId: Id
    productTitle: StrictStr | None = None
    productDescription: StrictStr | None = None
    validityPeriod: StrictStr
    productCategoryId: Id | None = None
    fareCategoryId: Id | None = None
    travellerCategoryId: Id | None = None
    fares: Annotated[list[Fare], Field(min_length=1, max_length=20)]
    spatialValidity: SpatialValidity | None = None
    modesOfTransport: Annotated[list[Annotated[StrictStr, Field(min_length=1, max_length=50)]],
                                Field(max_length=20)] | None = None

    @model_validator(mode="after")
    def _check(self) -> "Product":
        validity = parse_duration(self.validityPeriod)
        if not MIN_VALIDITY <= validity <= MAX_VALIDITY:
            raise ValueError(f"validityPeriod {self.validityPeriod} is not between 60 s and 400 days")
        if len({f.currency for f in self.fares}) != 1:
            raise ValueError("fares must all be in one currency")
        return self

    @property
    def validity(self) -> timedelta:
        return parse_duration(self.validityPeriod)

    def group(self, group_type: str) -> list[str] | None:
        """The ids of this product's spatial groups of one type; None when it has none (valid everywhere)."""
        groups = [g for g in (self.spatialValidity.groups or []) if g.groupType == group_type] \
            if self.spatialValidity else []
        return [i for g in groups for i in g.groupIds] if groups else None

    @property
    def zones(self) -> list[str] | None:
        return self.group("zone")

    @property
    def stop_areas(self) -> list[str] | None:
        return self.group("stopArea")

    def fare(self) -> dict[str, Any]:
        """The ticket's fare: the sum of the product's fares (one currency)."""
        amount = round(sum(f.amount for f in self.fares), 2)
        vat = round(sum(f.vatAmount for f in self.fares), 2)
        return {"amount": amount, "currency": self.fares[0].currency, "vatAmount": vat,
                "vatPercent": self.fares[0].vatPercent}

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class Catalogue(_Strict):
    zoneSystems: list[ZoneSystem] = Field(default_factory=list)
    stops: list[Stop] = Field(default_factory=list, max_length=1_000_000)
    fareCategories: list[FareCategory] = Field(default_factory=list)
    productCategories: list[ProductCategory] = Field(default_factory=list)
    travellerCategories: list[TravellerCategory] = Field(default_factory=list)
    products: Annotated[list[Product], Field(max_length=MAX_PRODUCTS)]
    _by_id: dict[str, Product] = PrivateAttr(default_factory=dict)
    _stops: dict[str, Stop] = PrivateAttr(default_factory=dict)
    _system: dict[str, str] = PrivateAttr(default_factory=dict)
    _graphs: dict[str, dict[str, set[str]]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> "Catalogue":
        _unique("productId", [p.productId for p in self.products])
        _unique("stopId", [s.stopId for s in self.stops])
        _unique("zoneSystemId", [z.zoneSystemId for z in self.zoneSystems])
        system: dict[str, str] = {}
        for zs in self.zoneSystems:
            for zone in zs.zones:
                if system.setdefault(zone, zs.zoneSystemId) != zs.zoneSystemId:
                    raise ValueError(f"zone {zone} is in zone systems {system[zone]} and {zs.zoneSystemId}")
            for a, b in zs.links or []:
                if a not in zs.zones or b not in zs.zones:
                    raise ValueError(f"zone system {zs.zoneSystemId}: link {a}-{b} names a zone it lacks")
        for stop in self.stops:
            for zone in stop.zones:
                if zone not in system:
                    raise ValueError(f"stop {stop.stopId}: zone {zone} is in no zone system")
        known = {"fareCategoryId": {c.fareCategoryId for c in self.fareCategories},
                 "productCategoryId": {c.productCategoryId for c in self.productCategories},
                 "travellerCategoryId": {c.travellerCategoryId for c in self.travellerCategories}}
        for product in self.products:
            for member, ids in known.items():
                value = getattr(product, member)
                if value is not None and value not in ids:
                    raise ValueError(f"product {product.productId}: {member} {value!r} is not in the categories")
            systems = {system.get(z) for z in product.zones or []}
            if None in systems:
                raise ValueError(f"product {product.productId}: a zone is in no zone system")
            if len(systems) > 1:
                raise ValueError(f"product {product.productId}: zones of several zone systems")
        return self

    # --- look-ups (built once per loaded catalogue) -------------------------------------------

    def model_post_init(self, _context: object) -> None:
        self._by_id = {p.productId: p for p in self.products}
        self._stops = {s.stopId: s for s in self.stops}
        self._system = {z: zs.zoneSystemId for zs in self.zoneSystems for z in zs.zones}
        self._graphs = {zs.zoneSystemId: zs.neighbours() for zs in self.zoneSystems}

    def product(self, product_id: str) -> Product | None:
        return self._by_id.get(product_id)

    def stop(self, stop_id: str) -> Stop | None:
        return self._stops.get(stop_id)

    def zone_system(self, zone: str) -> str | None:
        return self._system.get(zone)

    def path(self, a: str, b: str) -> list[str]:
        """The zones on a shortest way from zone ``a`` to zone ``b`` (both in one system), ends included."""
        graph = self._graphs[self._system[a]]
        previous: dict[str, str | None] = {a: None}
        queue = deque([a])
        while queue:
            zone = queue.popleft()
            if zone == b:
                break
            for nxt in sorted(graph[zone]):
                if nxt not in previous:
                    previous[nxt] = zone
                    queue.append(nxt)
        if b not in previous:
            return [a, b]  # not connected: the two zones alone
        way = [b]
        while way[-1] != a:
            way.append(previous[way[-1]])  # type: ignore[arg-type]
        return way[::-1]


def _unique(name: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{name} {value!r} appears twice")
        seen.add(value)
