"""The Product API over real HTTP: BoB's product filters against the conformance catalogue
(deploy/bob-conformance/products.json), the categories, manifests read back by their absolute
Location, and the sales lifecycle product -> manifest -> ticket -> validation."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import aiohttp
import pytest

import mtb
from mtb.timeutil import format_basic, utcnow
from server.app import app_from_data_dir
from server.product_api.catalogue import Catalogue, parse_duration
from server.thread import ServerThread

from .conftest import Api, Deployment, make_data_dir

ROOT = Path(__file__).resolve().parents[2]
CONFORMANCE = ROOT / "deploy" / "bob-conformance"
HIGH_LIMIT = {"requests": 100_000, "window_seconds": 60, "block_seconds": 1, "roles": {}}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory):
    """A deployment selling the conformance catalogue."""
    data_dir = make_data_dir(tmp_path_factory.mktemp("shop") / "data", rate_limit=HIGH_LIMIT)
    shutil.copyfile(CONFORMANCE / "products.json", data_dir / "products.json")
    server = ServerThread(app_from_data_dir(data_dir)).start()
    yield Deployment(data_dir, server)
    server.stop()


@pytest.fixture
async def shop_api(shop):
    async with aiohttp.ClientSession() as session:
        yield Api(shop, session)


def amounts(product_sets: list[list[dict]]) -> list[float]:
    return sorted(p["fares"][0]["amount"] for products in product_sets for p in products)


ZONE = "zone"


def group(*zones: str, **categories: list[str]) -> dict:
    return {"group": {"groupType": ZONE, "groupIds": list(zones)}, **categories}


def route(*points: dict, **categories: list[str]) -> dict:
    return {"route": list(points), **categories}


def stop(stop_id: str) -> dict:
    return {"stopId": stop_id}


def zone(zone_id: str) -> dict:
    return {"groupId": {"type": ZONE, "id": zone_id}}


DAY_SINGLE_ADULT = {"fareCategoryIds": ["day"], "productCategoryIds": ["single"], "travellerCategoryIds": ["a"]}


@pytest.mark.parametrize("body,expected", [
    # a zone group: the products valid in just those zones, one per traveller category
    (group("820", fareCategoryIds=["day"]), [15, 25, 45]),
    (group("820", "821", fareCategoryIds=["day"]), [23, 38, 68]),
    (group("820", "821", "822", fareCategoryIds=["day"], travellerCategoryIds=["a"]), [49]),
    (group("820", "822", fareCategoryIds=["day"], travellerCategoryIds=["a"]), [49]),  # the smallest cover
    (group("820", travellerCategoryIds=["a"]), [25, 35]),  # day and night fares
    # a route of zones, of stops (a border stop reads as either zone), or both
    (route(zone("820"), zone("821"), **DAY_SINGLE_ADULT), [38]),
    (route(stop("7411233"), stop("7417164"), **DAY_SINGLE_ADULT), [25, 38]),
    (route(stop("7417164"), stop("7411233"), stop("7422840"), **DAY_SINGLE_ADULT), [38, 49]),
    (route(stop("7411233"), zone("822"), **DAY_SINGLE_ADULT), [49]),  # through 821 on the way
    # both filters: their alternatives concatenated
    ({**group("820"), **route(zone("821")), **DAY_SINGLE_ADULT}, [25, 38, 103]),  # 821: 820-821 or 821-824
])
async def test_product_filters_offer_what_the_journey_needs(shop_api, body, expected):
    reply = await shop_api.post("/product", body, role="pos")
    assert reply.status == 200, reply
    assert amounts(reply.body) == sorted(expected)
    assert all(len(products) == 1 for products in reply.body)  # each product is an alternative of its own


@pytest.mark.parametrize("query,expected", [
    ({"originLocation": "7411233"}, [25]),
    ({"originLocation": "7411233", "destinationLocation": "7417164"}, [25, 38]),
    ({"originLocation": "7422840", "destinationLocation": "7433679"}, [93, 103, 103, 113]),  # 2 x 2 readings
])
async def test_product_query_by_origin_and_destination(shop_api, query, expected):
    reply = await shop_api.get("/product", role="tvm", params={**query, "fareCategoryId": "day",
                                                                "productCategoryId": "single",
                                                                "travellerCategoryId": "a"})
    assert reply.status == 200, reply
    assert amounts(reply.body) == expected


@pytest.mark.parametrize("body,status,code,field", [
    (group("99999", travellerCategoryIds=["a"]), 404, "unknown_zone", "group.groupIds[0]"),
    (route(stop("7411233"), stop("999")), 404, "unknown_stop", "route[1].stopId"),
    (group("820", "821", "870", travellerCategoryIds=["a"]), 422, "mixed_zone_systems", "group.groupIds"),
    (route(zone("820"), zone("870")), 422, "mixed_zone_systems", "route"),
    ({"area": {"circles": [{"center": {"lat": 57.7, "long": 12.0}, "radius": 500}]}}, 422, "unsupported_filter",
     "area"),
    (route({"coordinate": {"lat": 57.7, "long": 12.0}}), 422, "unsupported_filter", "route[0].coordinate"),
    ({"group": {"groupType": "municipality", "groupIds": ["x"]}}, 422, "unsupported_filter", "group.groupType"),
    ({"group": {"groupType": ZONE, "groupIds": []}}, 400, "bad_filter", "group.groupIds"),
    ({"fareCategoryIds": "day"}, 400, "bad_filter", "fareCategoryIds"),
    ({"color": "red"}, 400, "bad_filter", "color"),
    (route({"stopId": "7411233", "groupId": {"type": ZONE, "id": "820"}}), 400, "bad_filter", "route[0]"),
])
async def test_bad_filters_say_which_member(shop_api, body, status, code, field):
    reply = await shop_api.post("/product", body, role="pos")
    assert (reply.status, reply.body["code"]) == (status, code), reply
    assert reply.body["details"][0]["field"] == field


async def test_product_query_errors(shop_api):
    unknown = await shop_api.get("/product", role="pos", params={"originLocation": "999999",
                                                                  "destinationLocation": "7422840"})
    assert unknown.status == 404 and unknown.body["code"] == "unknown_stop"
    nothing = await shop_api.get("/product", role="pos", params={"originLocation": "7411233",
                                                                  "fareCategoryId": "night", "travellerCategoryId": "y"})
    assert nothing.status == 404 and nothing.body["code"] == "product_not_found"
    props = await shop_api.get("/product", role="pos", params={"productProperties": "seat=window"})
    assert props.status == 422 and props.body["code"] == "unsupported_filter"
    empty = await shop_api.post("/product", group("820", fareCategoryIds=["night"], travellerCategoryIds=["y"]),
                                role="pos")
    assert empty.status == 200 and empty.body == []  # POST answers what there is, even nothing


async def test_categories_and_one_product(shop_api):
    catalogue = json.loads((CONFORMANCE / "products.json").read_text())
    for kind, member in (("fare", "fareCategories"), ("product", "productCategories"),
                         ("traveller", "travellerCategories")):
        reply = await shop_api.get(f"/productcat/{kind}", role="pos")
        assert reply.status == 200 and reply.body == catalogue[member]
        assert reply.body and all(f"{kind}CategoryDescription" in c for c in reply.body)
    one = await shop_api.get("/product/single-820-a", role="pos")
    assert one.status == 200 and one.body == catalogue["products"][1]
    assert (await shop_api.get("/product/nope", role="pos")).status == 404


async def test_manifest_location_is_absolute_and_reads_the_same_manifest_back(shop_api):
    reply = await shop_api.post("/manifest", {"productSelections": [{"productId": "single-820-821-a"}] * 2},
                                role="pos")
    assert reply.status == 201, reply
    body = reply.body
    assert reply.headers["Location"] == shop_api.d.url(f"/manifest/{body['manifestId']}")
    assert body["distinct"] is True and body["bookingRequired"] is False
    assert body["fares"] == [{"amount": 76.0, "currency": "SEK", "vatAmount": 4.56, "vatPercent": 6.0}]  # 2 x 38
    assert [p["productId"] for p in body["products"]] == ["single-820-821-a"] * 2
    assert "Expires" in reply.headers
    async with aiohttp.ClientSession() as session:  # follow the header as a client does
        async with session.get(reply.headers["Location"],
                               headers={"X-BoB-AuthToken": shop_api.d.token("tvm")}) as fetched:
            assert fetched.status == 200
            assert (await fetched.json())["manifest"] == body["manifest"]
    assert (await shop_api.get(f"/manifest/{body['manifestId']}", role="val")).status == 403  # sellers only
    assert (await shop_api.get("/manifest/no-such", role="pos")).status == 404


@pytest.mark.parametrize("body,status,field", [
    ({"productSelections": [{"productId": "nope"}]}, 404, "productSelections[0].productId"),
    ({"productSelections": []}, 422, "productSelections"),
    ({"productSelections": [{"productId": "single-820-a"}] * 21}, 422, "productSelections"),
    ({"productSelections": [{"productId": "single-820-a", "productProperties": [{"name": "seat", "value": "1"}]}]},
     422, "productSelections[0].productProperties"),
    ({"productSelections": [{"productId": "single-820-a"}], "discountCodes": ["FREE"]}, 422, "discountCodes"),
    ({"productId": "single-820-a"}, 422, "productSelections"),  # the server's old manifest body is gone
])
async def test_bad_manifest_requests(shop_api, body, status, field):
    reply = await shop_api.post("/manifest", body, role="pos")
    assert reply.status == status, reply
    assert field in [d["field"] for d in reply.body["details"]]


async def test_a_product_set_of_several_products_is_one_manifest_and_one_bundle(shop_api):
    selections = [{"productId": "single-820-821-a"}, {"productId": "single-820-821-y"},
                  {"productId": "single-820-821-y"}]
    made = await shop_api.post("/manifest", {"productSelections": selections}, role="pos")
    assert made.status == 201, made
    assert made.body["fares"] == [{"amount": 84.0, "currency": "SEK", "vatAmount": 5.04, "vatPercent": 6.0}]  # 38+2x23
    assert [p["productId"] for p in made.body["products"]] == [s["productId"] for s in selections]
    issued = await shop_api.post("/ticket", {"manifestMtbTemplate": made.body["manifest"], "issueMtb": True},
                                 role="pos")
    assert issued.status == 201, issued
    bundle = mtb.decode(issued.body["ticketBundle"]["mtb"])
    assert [t.ticket_id for t in bundle.tickets] == issued.body["ticketIds"]
    assert [t.category for t in bundle.tickets] == ["a", "y", "y"]
    fares = [(await shop_api.get(f"/ticket/{tid}", role="pos")).body for tid in issued.body["ticketIds"]]
    assert [t["productId"] for t in fares] == [s["productId"] for s in selections]


async def test_lifecycle_product_manifest_ticket_online_validation(shop_api):
    offered = await shop_api.post("/product", group("820", "821", "822", travellerCategoryIds=["a"]), role="pos")
    product = offered.body[0][0]
    made = await shop_api.post("/manifest", {"productSelections": [{"productId": product["productId"]}]},
                               role="pos")
    assert made.status == 201
    issued = await shop_api.post("/ticket", {"manifestMtbTemplate": made.body["manifest"], "issueMtb": True},
                                 role="pos")
    assert issued.status == 201, issued
    [ticket_id] = issued.body["ticketIds"]
    assert issued.headers["Location"].startswith(shop_api.d.base + "/ticketbundle/")
    barcode = issued.body["ticketBundle"]["mtb"]
    [ticket] = mtb.decode(barcode).tickets
    assert ticket.product_id == product["productId"] and ticket.zones == ("820", "821", "822")
    assert ticket.category == "a" and ticket.valid_until - ticket.valid_from == parse_duration("PT90M")
    # the validator asks the server to decide: the ticket is valid in zone 821 now
    event = {"eventType": "validation", "time": format_basic(utcnow()), "ticketId": ticket_id,
             "zone": {"pid": 1234, "zoneId": "821"}}
    decided = await shop_api.post(f"/validation/{ticket_id}", event, role="val", params={"mtb": barcode})
    assert decided.status == 201, decided
    assert decided.body["ticketEventStatus"] == 0
    assert decided.body["ticketEvent"]["eventResult"] == 0
    # and the ticket API knows the ticket the manifest paid for
    sold = await shop_api.get(f"/ticket/{ticket_id}", role="pos")
    assert sold.body["productId"] == product["productId"]
    assert sold.body["state"] == "active"


async def test_no_catalogue_is_404_and_a_broken_one_keeps_the_last_good(make_server):
    d = make_server(rate_limit=HIGH_LIMIT)
    path = d.data_dir / "products.json"
    async with aiohttp.ClientSession() as session:
        api = Api(d, session)
        good = await api.get("/productcat/fare", role="pos")
        assert good.status == 200
        path.write_text('{"products": [{"productId": "x"}]}')  # no fares, no validity: refused whole
        os.utime(path, ns=(1, path.stat().st_mtime_ns + 1_000_000))
        assert (await api.get("/productcat/fare", role="pos")).body == good.body
        path.unlink()
        for request in (api.get("/productcat/traveller", role="pos"), api.post("/product", {}, role="pos"),
                        api.post("/manifest", {"productSelections": [{"productId": "single-2h"}]}, role="pos")):
            reply = await request
            assert reply.status == 404 and reply.body["code"] == "no_catalogue"


def catalogue(**changes) -> dict:
    document = json.loads((CONFORMANCE / "products.json").read_text())
    document.update(changes)
    return document


@pytest.mark.parametrize("change,message", [
    ({"products": [dict(catalogue()["products"][0], validityPeriod="P1M")]}, "not an ISO 8601 duration"),
    ({"products": [dict(catalogue()["products"][0], validityPeriod="PT30S")]}, "between 60 s and 400 days"),
    ({"products": [dict(catalogue()["products"][0], fares=[])]}, "fares"),
    ({"products": catalogue()["products"][:1] * 2}, "appears twice"),
    ({"stops": [{"stopId": "s", "zones": ["999"]}]}, "zone 999 is in no zone system"),
    ({"products": [dict(catalogue()["products"][0], travellerCategoryId="z")]}, "not in the categories"),
    ({"products": [dict(catalogue()["products"][0],
                        spatialValidity={"groups": [{"groupType": "zone", "groupIds": ["820", "870"]}]})]},
     "several zone systems"),
    ({"products": [dict(catalogue()["products"][0], fares=[
        {"amount": 1.0, "currency": "SEK", "vatAmount": 0.0, "vatPercent": 0.0},
        {"amount": 1.0, "currency": "EUR", "vatAmount": 0.0, "vatPercent": 0.0}])]}, "one currency"),
])
def test_the_catalogue_is_checked_as_a_whole(change, message):
    with pytest.raises(ValueError, match=message):
        Catalogue.model_validate(catalogue(**change))


def test_durations_of_fixed_length_only():
    assert parse_duration("PT90M").total_seconds() == 5400
    assert parse_duration("P1DT12H").total_seconds() == 36 * 3600
    assert parse_duration("P2W").days == 14
    for bad in ("P1M", "P1Y", "PT", "P", "90M", "PT1.5H", "P1DT"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_the_shipped_catalogues_load():
    for path in (ROOT / "agent" / "sample" / "products.json", CONFORMANCE / "products.json"):
        assert Catalogue.model_validate(json.loads(path.read_text())).products
