"""The B2B API's own OpenAPI document: served beside the BoB one, valid OpenAPI 3.1, listing
exactly the routes under /b2b, and true to the behaviour: real answers validate against it."""
from __future__ import annotations

from datetime import datetime, timezone

import jsonschema
import pytest
from openapi_spec_validator import validate

from server.b2b.cli import run_rollover

from .conftest import basic, row, token

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


def _pointer(body, expression: str):
    """The value a link's ``$response.body#/...`` expression names in ``body``."""
    value = body
    for part in expression.removeprefix("$response.body#/").split("/"):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


async def test_every_link_names_a_real_operation_and_following_it_on_real_answers_finds_the_resource(world):
    """The stateful conformance run follows these links: each names an operation of the
    document with exactly its path parameters, and the value it takes from a real answer
    leads to a resource that exists (a GET answers 2xx; a POST or PATCH is not a 404)."""
    doc = await document(world)
    operations = {op["operationId"]: (method.upper(), path, op) for path, ops in doc["paths"].items()
                  for method, op in ops.items()}
    company = world.company()
    assert (await company.sync([row("L1"), row("L2")])).status == 204
    await run_rollover(world.data_dir, datetime.now(timezone.utc))
    employee = (await company.employees())[0]["id"]
    document_id = (await company.get("/employee-documents")).body["data"]["data"][0]["id"]
    admin = {"X-BoB-AuthToken": token(world)}
    product = {"productId": "job-ticket", "fare": {"amount": 49.0, "currency": "EUR", "vatPercent": 7.0}}
    async with world.session.post(world.base + "/admin/companies", headers=admin,
                                  json={"name": "Linked GmbH", "product": product}) as made:
        linked = (await made.json())["data"]["id"]
    sources = {  # how to get a real answer of every operation that has links
        "listEmployees": ({}, None), "getEmployee": ({"id": employee}, None),
        "listEmployeeDocuments": ({"id": employee}, None), "listDocuments": ({}, None),
        "getDocument": ({"id": document_id}, None), "listHrIntegrations": ({}, None),
        "getHrIntegration": ({"id": company.integration}, None),
        "createAdminCompany": ({}, {"name": "Source GmbH", "product": product}),
        "createAdminApiKey": ({"companyId": linked}, {}),
        "createAdminWebhookEndpoint": ({"companyId": linked}, {"url": "http://127.0.0.1:9/hooks"}),
    }

    async def call(op_id: str, values: dict, body) -> tuple[int, object]:
        method, path, _ = operations[op_id]
        for name, value in values.items():
            path = path.replace("{" + name + "}", str(value))
        headers = admin if path.startswith("/admin/") else {"Authorization": basic(company.key_id, company.secret)}
        json_body = body if body is not None or method == "GET" else {}
        async with world.session.request(method, world.base + path, headers=headers,
                                         json=json_body if method != "GET" else None) as response:
            parsed = await response.json() if response.content_type == "application/json" else None
            return response.status, parsed

    with_links = {op_id for op_id, (_, _, op) in operations.items()
                  if any("links" in reply for reply in op["responses"].values())}
    assert with_links == set(sources)
    followed = 0
    for source, (values, body) in sources.items():
        _, _, op = operations[source]
        status, answer = await call(source, values, body)
        links = op["responses"][str(status)]["links"]
        for name, link in links.items():
            method, _, target = operations[link["operationId"]]
            path_params = {p["name"] for p in target.get("parameters", []) if p["in"] == "path"}
            assert set(link["parameters"]) == path_params, (source, name)
            args = {param: _pointer(answer, expression) for param, expression in link["parameters"].items()}
            reached, reply = await call(link["operationId"], args, None)
            if method == "GET":
                assert 200 <= reached < 300, (source, name, args, reached, reply)
            else:
                assert reached != 404 and reached < 500, (source, name, args, reached, reply)
            followed += 1
    assert followed >= 25
