"""Product API handlers: the catalogue's products through BoB's filters, its categories, and
manifests (``POST /manifest``: a signed authorisation to issue tickets of a product, which
``POST /ticket`` takes; ``GET /manifest/{manifestId}`` reads it back).

The lifecycle a sales system runs: ``POST /product`` (or ``GET /product``) -> ``POST /manifest``
with one of the offered productIds -> ``POST /ticket`` with the manifest -> devices validate.
"""
from __future__ import annotations

from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from mtb.timeutil import format_extended

from ..context import Context, ctx_of, visible_record
from ..endpoint import Api, Link, Param, Reply
from ..errors import ApiError, field_error, from_validation, json_response, read_json
from ..params import body_model, param
from ..store import ManifestRecord
from ..ticket_api import manifest as manifests
from ..ticket_api.manifest import Item
from ..ticket_api.tickets import segment
from .catalogue import Catalogue, Product
from .filters import ProductFilter, RoutePoint, Selection, offer, resolve, route_zone_sets, unsupported
from .schemas import (FareCategory, ManifestRequest, ProductCategory, ProductOut, ProductSetManifest,
                      TravellerCategory)

api = Api("Product API", "BoB Product API 2.1: products, categories and manifests from the operator's catalogue")

SELLERS = ("pos", "tvm")
PRODUCT_SETS = list[list[ProductOut]]
# The offered product a client may ask a manifest for (the stateful conformance run follows it).
OFFER_LINKS = (Link("createProductManifest",
                    request_body={"productSelections": [{"productId": "$response.body#/0/0/productId"}]}),
               Link("getProduct", {"productId": "$response.body#/0/0/productId"}))
NO_CATALOGUE = "This deployment has no product catalogue (products.json)"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def catalogue_of(ctx: Context) -> Catalogue:
    catalogue = ctx.catalogue.get() if ctx.catalogue is not None else None
    if catalogue is None:
        raise ApiError(404, "no product catalogue in this deployment", code="no_catalogue")
    return catalogue


def _sets(products: list[Product]) -> list[list[dict[str, Any]]]:
    """BoB's productSetAlternatives: each offered product is an alternative of its own."""
    return [[p.wire()] for p in products]


@api.endpoint("POST", "/product", op="postProductFilter", roles=SELLERS, body=ProductFilter,
              summary="Products for a filter (group of zones, route of stops or zones, categories)",
              description="Each offered product is a product set of its own. A route point on a zone border "
                          "gives an alternative per zone. Unsupported filter types (area, coordinates, "
                          "travellersPerCategory, productProperties, adjacencies, temporal) are a 422.",
              replies={200: Reply(PRODUCT_SETS, "Product set alternatives", links=OFFER_LINKS),
                       400: "Filter parameters illegal",
                       404: "Unknown zone or stop, or no catalogue",
                       422: "Illegal filter combination (zones of several zone systems) or unsupported filter"})
async def post_product(request: web.Request) -> web.Response:
    catalogue = catalogue_of(ctx_of(request))
    data = await read_json(request)
    if not isinstance(data, dict):
        raise field_error("(body)", "must be a productFilter object", status=400, code="bad_filter")
    try:
        fltr = ProductFilter.model_validate(data)
    except ValidationError as exc:
        error = from_validation(exc)
        raise ApiError(400, error.message, code="bad_filter", details=error.details) from None
    return json_response(_sets(offer(catalogue, resolve(catalogue, fltr))))


def _one(value: str | None) -> frozenset[str] | None:
    return frozenset([value]) if value else None


@api.endpoint("GET", "/product", op="getFilteredProducts", roles=SELLERS,
              summary="Products for a journey from originLocation to destinationLocation (stop ids)",
              params=tuple(param(name, "query", {"type": "string"}) for name in (
                  "productCategoryId", "fareCategoryId", "travellerCategoryId", "originLocation",
                  "destinationLocation", "productProperties")),
              replies={200: Reply(PRODUCT_SETS, "Product set alternatives", links=OFFER_LINKS),
                       404: "Matching product not found (or an unknown stop)",
                       422: "Unsupported parameter (productProperties) or a journey across zone systems"})
async def get_product(request: web.Request) -> web.Response:
    catalogue = catalogue_of(ctx_of(request))
    query = request.query
    if query.get("productProperties"):
        raise unsupported("productProperties", "the productProperties filter")
    stops = [query[name] for name in ("originLocation", "destinationLocation") if query.get(name)]
    zone_sets = None
    if stops:
        points = [RoutePoint(stopId=s) for s in stops]
        zone_sets = tuple(route_zone_sets(catalogue, points, "originLocation/destinationLocation"))
    selection = Selection(_one(query.get("fareCategoryId")), _one(query.get("productCategoryId")),
                          _one(query.get("travellerCategoryId")), zone_sets)
    products = offer(catalogue, selection)
    if not products:
        raise ApiError(404, "no product matches", code="product_not_found")
    return json_response(_sets(products))


@api.endpoint("GET", "/product/{productId}", op="getProduct", roles=SELLERS, summary="One product",
              params=(Param("productId", "path", {"type": "string"}),),
              replies={200: Reply(ProductOut), 404: "Product not found"})
async def get_one_product(request: web.Request) -> web.Response:
    product_id = request.match_info["productId"]
    product = catalogue_of(ctx_of(request)).product(product_id)
    if product is None:
        raise ApiError(404, f"product {product_id!r} not found", code="product_not_found")
    return json_response(product.wire())


def _categories(member: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        items = getattr(catalogue_of(ctx_of(request)), member)
        return json_response([item.model_dump(mode="json") for item in items])

    return handler


for _kind, _member, _model in (("fare", "fareCategories", FareCategory),
                               ("product", "productCategories", ProductCategory),
                               ("traveller", "travellerCategories", TravellerCategory)):
    api.endpoint("GET", f"/productcat/{_kind}", op=f"get{_kind.capitalize()}Categories", roles=SELLERS,
                 summary=f"The {_kind} categories of the catalogue",
                 replies={200: Reply(list[_model]), 404: NO_CATALOGUE})(_categories(_member))


# --- manifests --------------------------------------------------------------------------------

def _selected(catalogue: Catalogue, request: ManifestRequest) -> list[tuple[Product, int]]:
    """The products the selections name, each with how many times (in the order first named)."""
    for name in ("recoverTickets", "discountCodes"):
        if getattr(request, name):
            raise unsupported(name, name)  # recovering is POST /ticket's recoverTicketId
    counts: dict[str, int] = {}
    for index, selection in enumerate(request.productSelections):
        if selection.productProperties:
            raise unsupported(f"productSelections[{index}].productProperties", "product properties")
        if catalogue.product(selection.productId) is None:
            raise ApiError(404, f"product {selection.productId!r} not found", code="product_not_found",
                           details=[{"field": f"productSelections[{index}].productId",
                                     "message": "not in the catalogue"}])
        counts[selection.productId] = counts.get(selection.productId, 0) + 1
    return [(catalogue.product(product_id), count) for product_id, count in counts.items()]  # type: ignore[misc]


def _item(product: Product, count: int) -> Item:
    return Item(product={"productId": product.productId, "category": product.travellerCategoryId},
                fare=product.fare(), validitySeconds=int(product.validity.total_seconds()), count=count,
                zones=product.zones, modes=product.modesOfTransport, stopAreas=product.stop_areas)


def _totals(selected: list[tuple[Product, int]]) -> list[dict[str, Any]]:
    """What the set costs, one fare per currency."""
    totals: dict[str, dict[str, Any]] = {}
    for product, count in selected:
        fare = product.fare()
        total = totals.setdefault(fare["currency"], {**fare, "amount": 0.0, "vatAmount": 0.0})
        total["amount"] = round(total["amount"] + fare["amount"] * count, 2)
        total["vatAmount"] = round(total["vatAmount"] + fare["vatAmount"] * count, 2)
    return list(totals.values())


def _manifest_headers(ctx: Context, request: web.Request, record: ManifestRecord) -> dict[str, str]:
    return {"Location": ctx.absolute_url(request, f"/manifest/{segment(record.manifest_id)}"),
            "Expires": format_datetime(record.expire, usegmt=True), "Cache-Control": "no-store"}


# What a sales system does with a manifest (the stateful conformance run follows these).
MANIFEST_LINKS = (Link("issueTickets", request_body={"manifestMtbTemplate": "$response.body#/manifest"}),
                  Link("getProductManifest", {"manifestId": "$response.body#/manifestId"}))


@api.endpoint("POST", "/manifest", op="createProductManifest", roles=SELLERS, body=ManifestRequest,
              summary="A signed manifest for the selected product set (a ticket per selection, up to 20)",
              description="The manifest is what POST /ticket takes as manifestMtbTemplate; it issues its tickets "
                          "once, in one bundle, and expires after manifest_lifetime_seconds. recoverTickets, "
                          "discountCodes and productProperties are not supported (422).",
              replies={201: Reply(ProductSetManifest, headers=("Location", "Expires"), links=MANIFEST_LINKS),
                       404: "Product not found (or no catalogue)",
                       422: "Unsupported selection"})
async def post_manifest(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    body = await body_model(request, ManifestRequest)
    selected = _selected(catalogue_of(ctx), body)
    now = _now()
    token, claims = manifests.create(ctx.keyring, [_item(product, count) for product, count in selected], now,
                                     ctx.config.manifest_lifetime_seconds)
    expire = datetime.fromtimestamp(claims["exp"], timezone.utc)
    title = " + ".join(p.productTitle or p.productId for p, _ in selected)
    answer = {"manifestId": claims["manifestId"], "manifest": token, "productSetTitle": title,
              "manifestExpire": format_extended(expire), "distinct": True, "bookingRequired": False,
              "fares": _totals(selected),
              "products": [product.wire() for product, count in selected for _ in range(count)]}
    record = ManifestRecord(claims["manifestId"], ctx.keyring.pid, now, expire, answer)
    await ctx.run(ctx.store.add_manifest, record)
    return json_response(answer, status=201, headers=_manifest_headers(ctx, request, record))


@api.endpoint("GET", "/manifest/{manifestId}", op="getProductManifest", roles=SELLERS,
              summary="A manifest made by POST /manifest, as it was answered",
              params=(Param("manifestId", "path", {"type": "string"}),),
              replies={200: Reply(ProductSetManifest, headers=("Expires",)), 404: "Manifest not found"})
async def get_manifest(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    record = await visible_record(request, ctx.store.get_manifest, "manifestId", "manifest", "manifest_not_found")
    headers = _manifest_headers(ctx, request, record)
    del headers["Location"]
    return json_response(record.body, headers=headers)

