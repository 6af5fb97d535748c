"""The B2B API's own OpenAPI document: served beside the BoB one, valid OpenAPI 3.1, listing
exactly the routes under /b2b, and true to the behaviour: real answers validate against it."""
from __future__ import annotations

from datetime import datetime, timezone

import jsonschema
import pytest
from openapi_spec_validator import validate

from server.b2b.cli import run_rollover

from .conftest import row

pytestmark = pytest.mark.usefixtures("world")


async def document(world) -> dict:
    async with world.session.get(world.base + "/openapi.json") as response:
        assert response.status == 200
        return await response.json()


async def test_the_document_is_valid_and_lists_exactly_the_b2b_routes(world):
    doc = await document(world)
    validate(doc)
    assert doc["servers"] == [{"url": "/b2b"}]
    served = {(r.method.lower(), r.resource.canonical[len("/b2b"):]) for r in world.server.app.router.routes()
              if r.method != "HEAD" and r.resource.canonical.startswith("/b2b/")}
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented
    sync = doc["paths"]["/hr-integrations/{id}/sync"]["post"]
    assert {"204", "401", "403", "404", "409", "422", "429"} <= set(sync["responses"])
    assert "view-employees, add-employees, update-employees, remove-employees" in sync["description"]
    assert doc["paths"]["/health"]["get"]["security"] == []
    assert "Retry-After" in doc["paths"]["/employees"]["get"]["responses"]["429"]["headers"]
    employee = doc["components"]["schemas"]["Employee"]
    assert "hrIntergartionLinks" in employee["properties"] and "_links" in employee["properties"]


def check(doc: dict, path: str, method: str, status: int, body) -> None:
    schema = doc["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**schema, "components": doc["components"]}).validate(body)


async def test_real_answers_match_the_document(world):
    doc = await document(world)
    company = world.company()
    assert (await company.sync([row("S1"), row("S2")])).status == 204
    await run_rollover(world.data_dir, datetime.now(timezone.utc))
    employees = await company.get("/employees")
    check(doc, "/employees", "get", 200, employees.body)
    employee_id = employees.body["data"]["data"][0]["id"]
    check(doc, "/employees/{id}", "get", 200, (await company.get(f"/employees/{employee_id}")).body)
    check(doc, "/employees/{id}/ticket", "get", 200, (await company.get(f"/employees/{employee_id}/ticket")).body)
    docs = await company.get(f"/employees/{employee_id}/documents")
    check(doc, "/employees/{id}/documents", "get", 200, docs.body)
    check(doc, "/employee-documents", "get", 200, (await company.get("/employee-documents")).body)
    document_id = docs.body["data"]["data"][0]["id"]
    check(doc, "/employee-documents/{id}", "get", 200, (await company.get(f"/employee-documents/{document_id}")).body)
    check(doc, "/hr-integrations", "get", 200, (await company.get("/hr-integrations")).body)
    check(doc, "/hr-integrations/{id}", "get", 200,
          (await company.get(f"/hr-integrations/{company.integration}")).body)
    for path, status in (("/employees/999999", 404), ("/employees?perPage=500", 400)):
        reply = await company.get(path)
        assert reply.status == status
        check(doc, path.split("?")[0].replace("999999", "{id}"), "get", status, reply.body)
