"""One declaration per endpoint: its route, the roles that may call it and its OpenAPI
operation, together, on the handler itself::

    api = Api("Ticket API")

    @api.endpoint("GET", "/ticket/{ticketId}", op="getTicket", roles=("ins", "pos", "tvm"),
                  summary="A ticket", replies={200: Reply(Ticket), 404: "Ticket not found"})
    async def get_ticket(request): ...

Each API surface (a sub-package of :mod:`server`) has one :class:`Api`; the application mounts
them (:mod:`server.app`), the auth middleware reads the roles from the matched endpoint, and
:mod:`server.openapi` builds the document from the same declarations (request and response
schemas from pydantic models), so the route table, the role checks and the document cannot
disagree.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ROLES = ("val", "ins", "tvm", "pos", "admin")  # bobAuthZ values; admin may call every token endpoint
SUPPORT = "support"  # a read-only credential of the operator console (server.console); never given a token
CREDENTIAL_ROLES = (*ROLES, SUPPORT)  # what `python -m server credentials add --role` takes
PUBLIC = "public"  # no credentials at all
BASIC = "basic"  # HTTP Basic, checked by the handler itself


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # "query", "path" or "header"
    schema: Mapping[str, Any]
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Link:
    """An OpenAPI link: an operation a client may call next with values from this answer
    (runtime expressions such as ``$response.body#/ticketIds/0``); the stateful conformance
    run follows them."""

    operation_id: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    request_body: Any = None


@dataclass(frozen=True)
class Reply:
    """A documented answer: a pydantic model (or a type such as ``list[Model]``) for a JSON body,
    a raw JSON schema, or None for no body."""

    model: Any = None
    description: str = "Successful operation"
    headers: tuple[str, ...] = ()  # names from openapi.HEADERS
    content_type: str = "application/json"
    links: tuple[Link, ...] = ()


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # relative to the surface's base path
    handler: Handler
    operation_id: str
    roles: tuple[str, ...]
    summary: str
    description: str = ""
    body: Any = None  # request body: pydantic model or type, or a raw JSON schema
    body_description: str = ""
    replies: Mapping[int, Reply] = field(default_factory=dict)
    params: tuple[Param, ...] = ()

    @property
    def public(self) -> bool:
        return self.roles == (PUBLIC,)

    @property
    def basic(self) -> bool:
        return self.roles == (BASIC,)


def _roles(roles: str | tuple[str, ...]) -> tuple[str, ...]:
    roles = (roles,) if isinstance(roles, str) else tuple(roles)
    if roles in ((PUBLIC,), (BASIC,)):
        return roles
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"unknown roles {unknown or roles}")
    return tuple(dict.fromkeys((*roles, "admin")))


class Api:
    """One API surface: the endpoints declared on its handlers, in declaration order."""

    def __init__(self, title: str, description: str = ""):
        self.title = title
        self.description = description
        self.endpoints: list[Endpoint] = []

    def endpoint(self, method: str, path: str, *, op: str, roles: str | tuple[str, ...], summary: str,
                 description: str = "", body: Any = None, body_description: str = "",
                 replies: Mapping[int, Reply | str] | None = None,
                 params: tuple[Param, ...] = ()) -> Callable[[Handler], Handler]:
        """Declare the decorated handler as ``method path``; a reply given as a string is an
        error answer with that description (body: the common error schema)."""
        declared = {status: r if isinstance(r, Reply) else Reply(ERROR_BODY, r) for status, r in (replies or {}).items()}

        def register(handler: Handler) -> Handler:
            self.endpoints.append(Endpoint(method, path, handler, op, _roles(roles), summary, description, body,
                                           body_description, declared, params))
            return handler

        return register

    def add_routes(self, router: web.UrlDispatcher, base_path: str) -> None:
        for ep in self.endpoints:
            router.add_route(ep.method, base_path + ep.path, ep.handler, name=ep.operation_id)


ERROR_BODY = "Error"  # the name of the common error schema in every document
