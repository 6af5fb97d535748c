"""Bad input never gets a 500 or a traceback: malformed JSON = 400, wrong types = 422 naming
the field, unknown routes and methods = JSON 404/405, oversized bodies = 413."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROUTES_WITH_BODIES = [("POST", "/validation", "val"), ("POST", "/validation/T1", "val"),
                      ("POST", "/inspection", "ins"), ("POST", "/inspection/T1", "ins"),
                      ("POST", "/manifest", "pos"), ("POST", "/ticket", "pos"), ("POST", "/ticketbundle", "pos"),
                      ("POST", "/device/key", "pos"), ("PUT", "/ticket/T1/active", "pos")]


@pytest.mark.parametrize("method,path,role", ROUTES_WITH_BODIES)
@pytest.mark.parametrize("raw", ["{", "[1,", "not json", "", "   ", '{"a": NaN}', "\xff\xfe", '{"a": 1}}'])
async def test_malformed_json_is_400(api, method, path, role, raw):
    reply = await api.call(method, path, role=role, data=raw.encode("latin-1"),
                           headers={"Content-Type": "application/json"})
    assert reply.status == 400, (path, raw, reply)
    assert reply.body["code"] == "malformed_json" and reply.body["details"][0]["field"] == "(body)"
    assert "Traceback" not in reply.text


@pytest.mark.parametrize("method,path,role", ROUTES_WITH_BODIES)
@pytest.mark.parametrize("body", [[1, 2], "text", 3.5, {"unexpected": {"deep": [None]}}])
async def test_wrong_shapes_are_4xx_with_a_body(api, method, path, role, body):
    reply = await api.call(method, path, role=role, json_body=body)
    assert reply.status in (400, 404, 422), (path, body, reply)
    assert set(reply.body) >= {"code", "message"}
    if reply.status == 422:
        assert reply.body["details"][0]["field"]


@pytest.mark.parametrize("body,field", [({"activeStatus": "false"}, "activeStatus"), ("false", "activeStatus"),
                                        ({"activeStatus": 0}, "activeStatus"), ({}, "activeStatus")])
async def test_active_status_body_types(api, body, field):
    tid = await api.ticket_id("trav-errors")
    reply = await api.put(f"/ticket/{tid}/active", body, role="pos")
    assert reply.status == 422 and reply.body["details"][0]["field"] == field
    assert (await api.get(f"/ticket/{tid}/active", role="pos")).body is True


async def test_unknown_route_and_method_are_json(api):
    reply = await api.get("/no/such/route", role="admin")
    assert reply.status == 404 and reply.body["code"] == "not_found"
    reply = await api.call("DELETE", "/ticket/T1", role="admin")
    assert reply.status == 405 and reply.body["code"] == "method_not_allowed" and "GET" in reply.headers["Allow"]
    unauth = await api.get("/no/such/route", role=None)
    assert unauth.status == 404


async def test_body_over_the_size_limit_is_413(api, deployment):
    big = b"[" + b" " * (deployment.config.max_body_bytes + 10) + b"]"
    reply = await api.call("POST", "/validation", role="val", data=big, headers={"Content-Type": "application/json"})
    assert reply.status == 413 and reply.body["code"] == "payload_too_large"


async def test_hostile_strings_in_paths_and_queries(api):
    for path in ("/ticket/%27%20OR%201%3D1", "/ticket/..%2F..%2Fetc%2Fpasswd", "/ticket/" + "a" * 3000,
                 "/ticketbundle/%00", "/ticket/x/event/1%20OR%201=1"):
        reply = await api.get(path, role="admin")
        assert reply.status in (400, 404), (path, reply)
        assert reply.body is None or "code" in reply.body
    reply = await api.get("/ticket", params={"travellerId": "\u202e" * 50}, role="admin")
    assert reply.status == 200 and reply.body == []


async def test_a_nul_character_is_a_400_naming_where_it_was_on_every_store(api, deployment, make_event):
    """Text no store can keep (PostgreSQL text holds no NUL) is refused alike on both backends."""
    reply = await api.get("/ticket", params={"travellerId": "trav\x00"}, role="admin")
    assert reply.status == 400 and reply.body["details"][0]["field"] == "travellerId"
    reply = await api.get("/ticketbundle/%00", role="admin")
    assert reply.status == 400 and reply.body["details"][0]["field"] == "(path)"
    reply = await api.post("/validation", [make_event("T-nul", "nul-1"), make_event("T\x00", "nul-2")], role="val")
    assert reply.status == 400 and reply.body["details"][0]["field"] == "[1].ticketId"
    reply = await api.post("/validation", [make_event("T-nul", "nul-3", extra={"k\x00": 1})], role="val")
    assert reply.status == 400 and reply.body["details"][0]["field"] == "[0].extra.k\x00"
    assert deployment.rows("SELECT count(*) AS n FROM events WHERE ticket_id = 'T-nul'") == [(0,)]  # all or nothing


async def test_server_still_answers(api):
    assert (await api.get("/openapi.json", role=None)).status == 200
    assert (await api.get("/blacklist", role="val")).status == 200


def _post(deployment, path: str, data: bytes, role: str) -> int:
    import urllib.error
    import urllib.request
    request = urllib.request.Request(deployment.url(path), data=data, method="POST",
                                     headers={"X-BoB-AuthToken": deployment.token(role),
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        body = exc.read()
        assert b"Traceback" not in body
        return exc.code


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                       max_size=4), max_leaves=12)
event_like = st.fixed_dictionaries({"ticketId": json_values | st.text(min_size=1), "time": json_values},
                                   optional={"localEventId": json_values, "eventResult": json_values,
                                             "geo": json_values, "stopArea": json_values})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.lists(event_like, max_size=3) | json_values)
def test_fuzzed_event_batches_never_500(deployment, body):
    import json
    assert _post(deployment, "/validation", json.dumps(body).encode(), "val") in (200, 400, 413)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values)
def test_fuzzed_product_bodies_never_500(deployment, body):
    import json
    for path in ("/manifest", "/ticket", "/ticketbundle", "/device/key"):
        assert _post(deployment, path, json.dumps(body).encode(), "pos") in (400, 403, 409, 422), path


async def test_lone_surrogates_are_400_not_500(api, make_event):
    for path, role, body in (("/validation", "val", [make_event("T-s", "L-s", vendor={"k\ud801": "v\udc00"})]),
                             ("/manifest", "pos", {"productSelections": [{"productId": "\ud800"}]})):
        reply = await api.call("POST", path, role=role, data=json.dumps(body), headers={"Content-Type": "application/json"})
        assert reply.status == 400 and reply.body["code"] == "malformed_json", reply
    emoji = await api.post("/validation", [make_event("T-\U0001F68C", "L-emoji", eventReason="\U0001F68C ok")], role="val")
    assert emoji.status == 200


async def test_deeply_nested_json_is_400_not_500(api, make_event):
    for depth in (5000, 200_000):
        raw = "[" * depth + "]" * depth
        reply = await api.call("POST", "/validation", role="val", data=raw, headers={"Content-Type": "application/json"})
        assert reply.status == 400 and reply.body["code"] == "malformed_json"
        nested = json.dumps([make_event("T-deep", f"L-deep-{depth}")])[:-2] + ', "x": ' + raw + "}]"
        reply = await api.call("POST", "/validation", role="val", data=nested,
                               headers={"Content-Type": "application/json"})
        assert reply.status == 400
    assert (await api.post("/validation", [make_event("T-deep", "L-ok")], role="val")).status == 200
