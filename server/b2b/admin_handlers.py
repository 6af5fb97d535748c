"""The HTTP admin API of the B2B side (paths under ``b2b.base_path``, e.g. ``/b2b/admin/...``):
companies, API keys, HR integrations and webhook endpoints for an admin token
(``X-BoB-AuthToken`` with role ``admin``; the server's auth middleware checks it, as for every
BoB endpoint). The rules and the JSON are :mod:`.admin`'s, the same the CLI uses; answers are
``{"data": ...}`` like the rest of the B2B API; lists are the operator's few companies and are
not paged."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from ..endpoint import Link, Param, Reply
from ..errors import ApiError, json_response, read_json
from ..params import q_int
from . import admin, schemas
from .api import api, b2b_of

ADMIN = ("admin",)
COMPANY_ID = Param("companyId", "path", {"type": "integer", "minimum": 1})
KEY_ID = Param("keyId", "path", {"type": "string", "format": "uuid"}, "the API Key ID")
ENDPOINT_ID = Param("endpointId", "path", {"type": "integer", "minimum": 1})
NOT_FOUND = "No such company, key or endpoint"
COMPANY = "$response.body#/data/id"
COMPANY_LINKS = (Link("getAdminCompany", {"companyId": COMPANY}), Link("updateAdminCompany", {"companyId": COMPANY}),
                 Link("listAdminApiKeys", {"companyId": COMPANY}), Link("createAdminApiKey", {"companyId": COMPANY}),
                 Link("listAdminHrIntegrations", {"companyId": COMPANY}),
                 Link("createAdminHrIntegration", {"companyId": COMPANY}),
                 Link("listAdminWebhookEndpoints", {"companyId": COMPANY}),
                 Link("createAdminWebhookEndpoint", {"companyId": COMPANY}))
KEY = "$response.body#/data/keyId"
KEY_LINKS = (Link("getAdminApiKey", {"keyId": KEY}), Link("updateAdminApiKey", {"keyId": KEY}))
ENDPOINT = "$response.body#/data/id"
ENDPOINT_LINKS = (Link("getAdminWebhookEndpoint", {"endpointId": ENDPOINT}),
                  Link("updateAdminWebhookEndpoint", {"endpointId": ENDPOINT}),
                  Link("listAdminWebhookDeliveries", {"endpointId": ENDPOINT}))


def _int(request: web.Request, name: str) -> int:
    text = request.match_info[name]
    if not (text.isascii() and text.isdigit()) or len(text) > 15:
        raise ApiError(404, f"no resource with id {text!r}", code="not_found")
    return int(text)


async def _answer(request: web.Request, operation: Callable[..., Any], *args: Any, status: int = 200) -> web.Response:
    """Run an :mod:`.admin` operation in the store's thread: ``{"data": ...}``, or 404."""
    b2b = b2b_of(request)
    try:
        data = await b2b.run(operation, b2b.store, *args)
    except admin.NotFound as exc:
        raise ApiError(404, str(exc), code="not_found") from None
    return json_response({"data": data}, status=status)


def _now() -> datetime:
    return datetime.now(timezone.utc)


# --- companies --------------------------------------------------------------------------------

@api.endpoint("GET", "/admin/companies", op="listAdminCompanies", roles=ADMIN, summary="Companies (employers)",
              replies={200: Reply(schemas.AdminCompanyList)})
async def list_companies(request: web.Request) -> web.Response:
    return await _answer(request, admin.list_companies)


@api.endpoint("POST", "/admin/companies", op="createAdminCompany", roles=ADMIN, summary="Add a company",
              description="Its job-ticket product (zones, modes, monthly fare) and its employees' default plan.",
              body=admin.CompanyIn, replies={201: Reply(schemas.AdminCompanyOne, "Added", links=COMPANY_LINKS)})
async def create_company(request: web.Request) -> web.Response:
    body = admin.CompanyIn.model_validate(await read_json(request))
    return await _answer(request, admin.create_company, body, _now(), status=201)


@api.endpoint("GET", "/admin/companies/{companyId}", op="getAdminCompany", roles=ADMIN, summary="A company",
              params=(COMPANY_ID,), replies={200: Reply(schemas.AdminCompanyOne), 404: NOT_FOUND})
async def get_company(request: web.Request) -> web.Response:
    return await _answer(request, admin.get_company, _int(request, "companyId"))


@api.endpoint("PATCH", "/admin/companies/{companyId}", op="updateAdminCompany", roles=ADMIN,
              summary="Turn a company's API access on or off", params=(COMPANY_ID,), body=admin.CompanyPatch,
              replies={200: Reply(schemas.AdminCompanyOne), 404: NOT_FOUND})
async def update_company(request: web.Request) -> web.Response:
    company_id = _int(request, "companyId")
    patch = admin.CompanyPatch.model_validate(await read_json(request))
    return await _answer(request, admin.update_company, company_id, patch)


# --- API keys ---------------------------------------------------------------------------------

@api.endpoint("GET", "/admin/companies/{companyId}/api-keys", op="listAdminApiKeys", roles=ADMIN,
              summary="A company's API keys (never their secrets)", params=(COMPANY_ID,),
              replies={200: Reply(schemas.AdminApiKeyList), 404: NOT_FOUND})
async def list_keys(request: web.Request) -> web.Response:
    return await _answer(request, admin.list_keys, _int(request, "companyId"))


@api.endpoint("POST", "/admin/companies/{companyId}/api-keys", op="createAdminApiKey", roles=ADMIN,
              summary="Make an API key: the secret is in this answer only", params=(COMPANY_ID,), body=admin.ApiKeyIn,
              replies={201: Reply(schemas.AdminNewApiKeyOne, "Made", links=KEY_LINKS), 404: NOT_FOUND})
async def create_key(request: web.Request) -> web.Response:
    company_id = _int(request, "companyId")
    body = admin.ApiKeyIn.model_validate(await read_json(request))
    return await _answer(request, admin.create_key, company_id, body, _now(), status=201)


@api.endpoint("GET", "/admin/api-keys/{keyId}", op="getAdminApiKey", roles=ADMIN, summary="An API key",
              params=(KEY_ID,), replies={200: Reply(schemas.AdminApiKeyOne), 404: NOT_FOUND})
async def get_key(request: web.Request) -> web.Response:
    return await _answer(request, admin.get_key, request.match_info["keyId"])


@api.endpoint("PATCH", "/admin/api-keys/{keyId}", op="updateAdminApiKey", roles=ADMIN,
              summary="Enable or disable an API key, or set its permissions", params=(KEY_ID,), body=admin.ApiKeyPatch,
              replies={200: Reply(schemas.AdminApiKeyOne), 404: NOT_FOUND})
async def update_key(request: web.Request) -> web.Response:
    patch = admin.ApiKeyPatch.model_validate(await read_json(request))
    return await _answer(request, admin.update_key, request.match_info["keyId"], patch)


# --- HR integrations --------------------------------------------------------------------------

@api.endpoint("GET", "/admin/companies/{companyId}/hr-integrations", op="listAdminHrIntegrations", roles=ADMIN,
              summary="A company's HR integrations", params=(COMPANY_ID,),
              replies={200: Reply(schemas.AdminIntegrationList), 404: NOT_FOUND})
async def list_integrations(request: web.Request) -> web.Response:
    return await _answer(request, admin.list_integrations, _int(request, "companyId"))


@api.endpoint("POST", "/admin/companies/{companyId}/hr-integrations", op="createAdminHrIntegration", roles=ADMIN,
              summary="Add an HR integration (the company's HR platform syncs its roster through it)",
              params=(COMPANY_ID,), body=admin.IntegrationIn,
              replies={201: Reply(schemas.AdminIntegrationOne, "Added"), 404: NOT_FOUND})
async def create_integration(request: web.Request) -> web.Response:
    company_id = _int(request, "companyId")
    body = admin.IntegrationIn.model_validate(await read_json(request))
    return await _answer(request, admin.create_integration, company_id, body, _now(), status=201)


# --- webhook endpoints ------------------------------------------------------------------------

@api.endpoint("GET", "/admin/companies/{companyId}/webhook-endpoints", op="listAdminWebhookEndpoints", roles=ADMIN,
              summary="A company's webhook endpoints (enabled, failing since, why disabled)", params=(COMPANY_ID,),
              replies={200: Reply(schemas.AdminEndpointList), 404: NOT_FOUND})
async def list_endpoints(request: web.Request) -> web.Response:
    return await _answer(request, admin.list_endpoints, _int(request, "companyId"))


@api.endpoint("POST", "/admin/companies/{companyId}/webhook-endpoints", op="createAdminWebhookEndpoint", roles=ADMIN,
              summary="Register a webhook endpoint: the signing secret is in this answer only", params=(COMPANY_ID,),
              body=admin.EndpointIn,
              replies={201: Reply(schemas.AdminNewEndpointOne, "Registered", links=ENDPOINT_LINKS), 404: NOT_FOUND})
async def create_endpoint(request: web.Request) -> web.Response:
    company_id = _int(request, "companyId")
    body = admin.EndpointIn.model_validate(await read_json(request))
    return await _answer(request, admin.create_endpoint, company_id, body, _now(), status=201)


@api.endpoint("GET", "/admin/webhook-endpoints/{endpointId}", op="getAdminWebhookEndpoint", roles=ADMIN,
              summary="A webhook endpoint", params=(ENDPOINT_ID,),
              replies={200: Reply(schemas.AdminEndpointOne), 404: NOT_FOUND})
async def get_endpoint(request: web.Request) -> web.Response:
    return await _answer(request, admin.get_endpoint, _int(request, "endpointId"))


@api.endpoint("PATCH", "/admin/webhook-endpoints/{endpointId}", op="updateAdminWebhookEndpoint", roles=ADMIN,
              summary="Enable (what it missed is sent at once) or disable a webhook endpoint", params=(ENDPOINT_ID,),
              body=admin.EndpointPatch, replies={200: Reply(schemas.AdminEndpointOne), 404: NOT_FOUND})
async def update_endpoint(request: web.Request) -> web.Response:
    endpoint_id = _int(request, "endpointId")
    patch = admin.EndpointPatch.model_validate(await read_json(request))
    return await _answer(request, admin.update_endpoint, endpoint_id, patch, _now())


@api.endpoint("GET", "/admin/webhook-endpoints/{endpointId}/deliveries", op="listAdminWebhookDeliveries", roles=ADMIN,
              summary="The endpoint's delivery log, newest first: every attempt, status, response code, next try",
              params=(ENDPOINT_ID, Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500,
                                                            "default": 50})),
              replies={200: Reply(schemas.AdminDeliveryList), 404: NOT_FOUND})
async def list_deliveries(request: web.Request) -> web.Response:
    endpoint_id = _int(request, "endpointId")
    limit = q_int(request, "limit", 50, 1, 500) or 50
    return await _answer(request, admin.delivery_log, endpoint_id, limit)
