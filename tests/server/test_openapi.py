"""The OpenAPI document is valid JSON, OpenAPI 3.x, and lists exactly the app's routes."""
from __future__ import annotations

import json
import re

import pytest

from server.app import SURFACES
from server.console import PREFIX as CONSOLE_PREFIX


async def test_openapi_is_public_json_3x(api):
    reply = await api.get("/openapi.json", role=None)
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("application/json")
    doc = json.loads(reply.text)
    assert re.fullmatch(r"3\.\d+\.\d+", doc["openapi"])
    assert doc["servers"] == [{"url": "/api/v1"}]
    assert doc["info"]["title"] and doc["info"]["version"]


async def test_openapi_lists_every_route_the_app_has_and_no_other(api, deployment):
    doc = (await api.get("/openapi.json", role=None)).body
    app = deployment.server.app
    base = deployment.config.base_path
    served = set()
    for route in app.router.routes():
        path = route.resource.canonical
        if route.method == "HEAD" or path.startswith(CONSOLE_PREFIX + "/"):
            continue  # the console's web pages are not an API (tests/server/test_console.py)
        if path.startswith(deployment.config.b2b.base_path + "/"):
            continue  # the B2B API has its own document (tests/b2b/test_b2b_openapi.py)
        assert path.startswith(base)
        served.add((route.method.lower(), path[len(base):]))
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert served == documented
    assert len(served) == sum(len(surface.endpoints) for surface in SURFACES)


async def test_every_operation_is_complete_and_refs_resolve(api):
    doc = (await api.get("/openapi.json", role=None)).body
    schemas = doc["components"]["schemas"]
    ids = set()
    for path, ops in doc["paths"].items():
        params_in_path = set(re.findall(r"{(\w+)}", path))
        for method, op in ops.items():
            assert op["operationId"] not in ids
            ids.add(op["operationId"])
            assert op["responses"] and op["summary"]
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert params_in_path == declared, (path, method)
            if op["security"]:
                scheme = next(iter(op["security"][0]))
                assert scheme in doc["components"]["securitySchemes"]
                if scheme == "bobAuthToken":
                    assert {"401", "403", "429"} <= set(op["responses"])
                    assert set(op["x-bob-roles"]) <= {"val", "ins", "tvm", "pos", "admin"}
    for ref in re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(doc)):
        assert ref in schemas, ref
    for name in ("ValidationEvent", "InspectionEvent"):
        assert "time" in schemas[name]["required"] and "ticketId" in schemas[name]["required"]


async def test_declared_roles_match_what_the_server_enforces(api):
    doc = (await api.get("/openapi.json", role=None)).body
    ingest = doc["paths"]["/validation"]["post"]["x-bob-roles"]
    assert ingest == ["val", "admin"]
    assert (await api.post("/validation", [], role="ins")).status == 403


async def test_document_passes_an_openapi_validator_when_one_is_installed(api):
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate((await api.get("/openapi.json", role=None)).body)
