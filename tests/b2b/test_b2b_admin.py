"""The HTTP admin API (/b2b/admin/...) over real HTTP on 127.0.0.1, with a real admin token:
companies, API keys (the secret once; enable, disable, permissions), HR integrations, webhook
endpoints and their delivery log, the same rules and answers as the CLI (which runs the same
functions), 401/403 for anything but an admin token, 404s and 422s naming the field."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from server import cli
from server.b2b import webhooks
from server.b2b.cli import run_deliver

from .conftest import Company, Receiver, basic, row, token

pytestmark = pytest.mark.usefixtures("world")
COMPANY = {"name": "Admin GmbH", "product": {"productId": "job-ticket", "zones": ["A", "B"], "modes": ["bus"],
                                             "fare": {"amount": 49.0, "currency": "EUR", "vatPercent": 7.0}},
           "plan": {"type": "split-pay-plan", "employeeContributionAmount": 29.0}}


class Admin:
    def __init__(self, world, entity: str = "admin"):
        self.world = world
        self.headers = {"X-BoB-AuthToken": token(world, entity)}

    async def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        async with self.world.session.request(method, f"{self.world.base}/admin{path}", json=body,
                                              headers=self.headers if headers is None else headers) as response:
            return response.status, await response.json()


async def test_only_an_admin_token_may_call_it(world):
    admin = Admin(world)
    assert (await admin.call("GET", "/companies", headers={}))[0] == 401
    assert (await admin.call("GET", "/companies", headers={"X-BoB-AuthToken": "x.y.z"}))[0] == 401
    status, body = await admin.call("GET", "/companies", headers={"X-BoB-AuthToken": token(world, "pos1")})
    assert status == 403 and body["code"] == "wrong_role"
    company = world.company()
    status, _ = await admin.call("GET", "/companies", headers={"Authorization": basic(company.key_id, company.secret)})
    assert status == 401  # an employer's API key is not an admin


async def test_companies_keys_and_integrations_over_http_drive_the_published_api(world):
    admin = Admin(world)
    status, made = await admin.call("POST", "/companies", COMPANY)
    assert status == 201
    company = made["data"]
    assert company["product"]["fare"] == {"amount": 49.0, "currency": "EUR", "vatAmount": 3.43, "vatPercent": 7.0}
    assert company["apiEnabled"] is True and company["plan"]["employeeContributionAmount"] == 29.0
    assert await admin.call("GET", f"/companies/{company['id']}") == (200, {"data": company})
    assert company in (await admin.call("GET", "/companies"))[1]["data"]
    status, integration = await admin.call("POST", f"/companies/{company['id']}/hr-integrations", {"name": "Personio"})
    assert status == 201 and integration["data"]["status"] == "INITIAL SYNC PENDING"
    status, key = await admin.call("POST", f"/companies/{company['id']}/api-keys", {"name": "HR platform"})
    assert status == 201 and len(key["data"]["secret"]) >= 40
    assert sorted(key["data"]["permissions"]) == sorted(["view-employees", "add-employees", "update-employees",
                                                         "remove-employees", "view-hr-integrations"])
    listed = (await admin.call("GET", f"/companies/{company['id']}/api-keys"))[1]["data"]
    assert [k["keyId"] for k in listed] == [key["data"]["keyId"]] and "secret" not in listed[0]

    employer = Company(world, company["id"], integration["data"]["id"], key["data"]["keyId"], key["data"]["secret"])
    assert (await employer.sync([row("H1")])).status == 204
    assert [e["plan"]["type"] for e in await employer.employees()] == ["split-pay-plan"]

    key_path = f"/api-keys/{key['data']['keyId']}"
    status, changed = await admin.call("PATCH", key_path, {"permissions": ["view-employees"]})
    assert status == 200 and changed["data"]["permissions"] == ["view-employees"]
    reply = await employer.get("/hr-integrations")
    assert reply.status == 403 and "view-hr-integrations" in reply.body["message"]
    assert (await admin.call("PATCH", key_path, {"enabled": False}))[1]["data"]["enabled"] is False
    assert (await employer.get("/employees")).body["code"] == "key_disabled"
    assert (await admin.call("PATCH", key_path, {"enabled": True}))[0] == 200
    assert (await employer.get("/employees")).status == 200
    assert (await admin.call("PATCH", f"/companies/{company['id']}", {"apiEnabled": False}))[1]["data"]["apiEnabled"] \
        is False
    assert (await employer.get("/employees")).body["code"] == "api_access_disabled"


async def test_webhook_endpoints_and_their_delivery_log(world):
    admin = Admin(world)
    company = world.company()
    receiver = Receiver()
    url = await receiver.start()
    try:
        status, made = await admin.call("POST", f"/companies/{company.id}/webhook-endpoints",
                                        {"url": url, "events": [webhooks.SUBSCRIPTION_CHANGED]})
        assert status == 201 and made["data"]["secret"].startswith("whsec_")
        endpoint = made["data"]
        receiver.secret = endpoint["secret"]
        assert (await company.sync([row("L1")])).status == 204
        await run_deliver(world.data_dir, datetime.now(timezone.utc))
        status, log = await admin.call("GET", f"/webhook-endpoints/{endpoint['id']}/deliveries")
        [delivery] = log["data"]
        assert delivery["status"] == "delivered" and delivery["log"][0]["statusCode"] == 204
        assert delivery["eventId"] == receiver.events[0]["event"]["id"]
        status, off = await admin.call("PATCH", f"/webhook-endpoints/{endpoint['id']}", {"enabled": False})
        assert off["data"]["enabled"] is False and off["data"]["disabledReason"] == "disabled by the operator"
        listed = (await admin.call("GET", f"/companies/{company.id}/webhook-endpoints"))[1]["data"]
        assert listed == [off["data"]] and "secret" not in listed[0]
        status, on = await admin.call("PATCH", f"/webhook-endpoints/{endpoint['id']}", {"enabled": True})
        assert on["data"]["enabled"] is True and on["data"]["disabledReason"] is None
    finally:
        await receiver.stop()


@pytest.mark.parametrize("body, field", [
    ({**COMPANY, "name": ""}, "name"),
    ({**COMPANY, "product": {**COMPANY["product"], "fare": {"amount": 49.0, "currency": "eur"}}}, "product.fare.currency"),
    ({**COMPANY, "product": {**COMPANY["product"], "modes": ["rocket"]}}, "product.modes[0]"),
    ({**COMPANY, "plan": {"type": "split-pay-plan"}}, "plan"),
    ({**COMPANY, "colour": "red"}, "colour"),
])
async def test_a_bad_company_is_422_naming_the_field(world, body, field):
    status, reply = await Admin(world).call("POST", "/companies", body)
    assert status == 422 and reply["details"][0]["field"] == field, reply


async def test_unknown_ids_are_404_and_bad_patches_422(world):
    admin = Admin(world)
    company = world.company()
    for path in ("/companies/999999", "/companies/999999/api-keys", "/companies/abc",
                 "/api-keys/8d1f2b8e-4a0d-4f52-9c1e-2b7e6f0a9d11", "/api-keys/not-a-key",
                 "/webhook-endpoints/999999", "/webhook-endpoints/999999/deliveries"):
        status, body = await admin.call("GET", path)
        assert status == 404 and body["code"] == "not_found", path
    assert (await admin.call("POST", "/companies/999999/api-keys", {}))[0] == 404
    for path, patch, field in ((f"/api-keys/{company.key_id}", {}, "(body)"),
                               (f"/api-keys/{company.key_id}", {"permissions": ["fly"]}, "permissions[0]"),
                               (f"/api-keys/{company.key_id}", {"permissions": []}, "permissions"),
                               (f"/companies/{company.id}", {"apiEnabled": "no"}, "apiEnabled")):
        status, body = await admin.call("PATCH", path, patch)
        assert status == 422, (patch, body)
        assert body["details"][0]["field"] == field, body
    status, body = await admin.call("POST", f"/companies/{company.id}/webhook-endpoints", {"url": "ftp://x/y"})
    assert status == 422 and body["details"][0]["field"] == "url"


async def test_the_cli_and_the_http_api_answer_alike(world, capsys):
    admin = Admin(world)
    _, made = await admin.call("POST", "/companies", {**COMPANY, "name": "Both Ways AG"})
    assert cli.main(["b2b", "company", "list", "--data", str(world.data_dir)]) == 0
    from_cli = json.loads(capsys.readouterr().out)
    from_http = (await admin.call("GET", "/companies"))[1]["data"]
    assert from_cli == from_http and made["data"] in from_cli
    assert cli.main(["b2b", "key", "add", "--data", str(world.data_dir), "--company", str(made["data"]["id"]),
                     "--permissions", "view-employees"]) == 0
    key = json.loads(capsys.readouterr().out)
    assert (await admin.call("GET", f"/api-keys/{key['keyId']}"))[1]["data"] == \
        {k: v for k, v in key.items() if k not in ("secret", "note")}
