"""Tickets: search (ticket, traveller, bundle or request id), a ticket's page (state, validity,
zones, holder, the MTB decoded and its 2D code, the timeline) and its buttons.

The buttons run the Ticket API's own state machine (:func:`server.ticket_api.tickets.apply`),
as the signed-in admin, with the reason they typed: the same checks, the same deny-list
entries, one more line in the ticket's log that says who and why.
"""
from __future__ import annotations

import json
import logging
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import segno
from aiohttp import web

import mtb
from mtb.verifier import SignatureCheck, verify_issuer

from ..auth import Principal
from ..errors import ApiError
from ..store import TicketRecord
from ..ticket_api.tickets import (TRANSITIONS, apply, recover_status, refund_status, refundable_status,
                                  remaining_value)
from .page import ADMIN, access, console_of, render, user_of
from .queries import SEARCH_BY
from .render import ConsoleError, Pager, choice, page_number, see_other

log = logging.getLogger("server.console")
routes = web.RouteTableDef()

ACTIONS = ("freeze", "thaw", "refund", "revoke")  # the buttons; recover/reissue stay the sellers' API calls
DONE = {"freeze": "Ticket frozen.", "thaw": "Ticket thawed.", "refund": "Ticket refunded.",
        "revoke": "Ticket revoked."}
MAX_QUERY, MIN_REASON, MAX_REASON = 200, 3, 500


@dataclass(frozen=True)
class DecodedMtb:
    """The ticket's MTB as a device reads it, and whether its issuer signature verifies
    against the participant metadata this server serves."""

    transport: str
    size: int  # bytes of the CBOR container
    header: mtb.IssuerHeader
    tickets: tuple[mtb.Ticket, ...]
    device: mtb.DeviceSigned | None
    signature: SignatureCheck


def decode_mtb(ticket: TicketRecord, keystore: Any) -> tuple[DecodedMtb | None, str | None]:
    try:
        decoded = mtb.decode(ticket.mtb)
    except mtb.MtbFormatError as exc:
        return None, f"The stored MTB does not decode: {exc}"
    return DecodedMtb(decoded.transport, len(decoded.container), decoded.issuer.header, decoded.tickets,
                      decoded.device, verify_issuer(decoded, keystore)), None


def qr_svg(text: str) -> str:
    """The MTB's 2D code (QR, low error correction: the most data per module) as inline SVG,
    a picture (role img) named by its title: segno writes no role, so it is added here."""
    svg = segno.make(text, error="l", micro=False).svg_inline(
        scale=1, border=4, omitsize=True, dark="#000", light="#fff", svgclass="qr",
        title="2D code of this ticket's MTB")
    return svg.replace("<svg ", '<svg role="img" ', 1)


def plain(value: Any) -> str:
    """A decoded CBOR value as text an operator can read (bytes as hex)."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return ", ".join(plain(v) for v in value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{plain(k)}: {plain(v)}" for k, v in value.items()) + "}"
    return str(value)


def _member(event: dict[str, Any], name: str, key: str) -> str | None:
    value = event.get(name)
    found = value.get(key) if isinstance(value, dict) else None
    return str(found) if found not in (None, "") else None


def event_place(event: dict[str, Any]) -> str:
    """Where a device was: stop area, zone, position, mode (what the event carries)."""
    parts = []
    stop = _member(event, "stopArea", "stopAreaId")
    if stop:
        parts.append(f"stop area {stop}")
    zone = _member(event, "zone", "zoneId")
    if zone:
        parts.append(f"zone {zone}")
    lat, lon = _member(event, "geo", "lat"), _member(event, "geo", "long")
    if lat and lon:
        parts.append(f"{lat}, {lon}")
    if isinstance(event.get("modeOfTransport"), str):
        parts.append(event["modeOfTransport"])
    return ", ".join(parts) or "—"


def event_device(event: dict[str, Any]) -> str:
    """Which device: its validator id and where on the vehicle, or the device of a bound MTB."""
    parts = [p for p in (_member(event, "validator", "validatorId"), _member(event, "validator", "location"),
                         _member(event, "validator", "sublocation")) if p]
    did = _member(event, "deviceReference", "did")
    if did and not parts:
        parts.append(f"ticket device {did}")
    return ", ".join(parts) or "—"


def possible_actions(ticket: TicketRecord, now: datetime) -> list[str]:
    """The buttons the ticket's state allows now (the state machine's own table decides)."""
    found = []
    for action in ACTIONS:
        rule = TRANSITIONS[action]
        if ticket.state in rule.sources and (not rule.needs_value or remaining_value(ticket, now) is not None):
            found.append(action)
    return found


def payload_of(ticket: TicketRecord) -> dict[str, Any]:
    try:
        value = json.loads(mtb.b64url_decode(ticket.payload))
    except (ValueError, mtb.MtbFormatError):
        return {}
    return value if isinstance(value, dict) else {}


def clean_reason(value: object) -> str | None:
    """The reason as typed, trimmed; None when it is too short, too long or holds control
    characters (it goes into the log as it is)."""
    text = str(value or "").strip()
    if not MIN_REASON <= len(text) <= MAX_REASON:
        return None
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in text):
        return None
    return text


@routes.get("/tickets", name="console.tickets")
async def search(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    by = choice(request, "by", SEARCH_BY, "any")
    query = request.query.get("q", "").strip()
    if len(query) > MAX_QUERY:
        raise ConsoleError(400, f"The search text is longer than {MAX_QUERY} characters.")
    number, size = page_number(request), console.ctx.config.console.page_size
    rows, total = await console.ctx.run(console.queries.search_tickets, by, query, (number - 1) * size, size)
    if query and total == 1 and rows[0].ticket_id == query and by in ("any", "ticket"):
        return see_other(str(request.app.router["console.ticket"].url_for(ticketId=query)))
    return render(request, "tickets.html", rows=rows, pager=Pager(number, size, total, request.rel_url), by=by,
                  query=query, search_by=SEARCH_BY)


async def _ticket_page(request: web.Request, *, status: int = 200, error: str | None = None) -> web.Response:
    console = console_of(request)
    ticket_id = request.match_info["ticketId"]
    ticket = await console.ctx.run(console.ctx.store.get_ticket, ticket_id)
    if ticket is None:
        raise ConsoleError(404, f"No ticket {ticket_id!r}.")
    number, size = page_number(request), console.ctx.config.console.page_size
    items, total = await console.ctx.run(console.queries.timeline, ticket_id, (number - 1) * size, size)
    decoded, decode_error = decode_mtb(ticket, console.ctx.keyring.metadata.keystore)
    now = console.now()
    return render(request, "ticket.html", status=status, error=error, ticket=ticket, payload=payload_of(ticket),
                  decoded=decoded, decode_error=decode_error, qr=qr_svg(ticket.mtb), plain=plain,
                  place=event_place, device=event_device,
                  timeline=items, pager=Pager(number, size, total, request.rel_url),
                  actions=possible_actions(ticket, now), all_actions=ACTIONS,
                  refundable=refundable_status(ticket, now), refund=refund_status(ticket),
                  recover=recover_status(ticket), done=DONE.get(request.query.get("done", "")))


@routes.get("/tickets/{ticketId}", name="console.ticket")
async def ticket_page(request: web.Request) -> web.StreamResponse:
    return await _ticket_page(request)


@routes.post("/tickets/{ticketId}/action", name="console.ticket_action")
@access(ADMIN)
async def ticket_action(request: web.Request) -> web.StreamResponse:
    """One button: ``action`` (freeze, thaw, refund, revoke) and ``reason``; the middleware has
    checked the session, the admin role and the CSRF token."""
    console = console_of(request)
    user = user_of(request)
    ticket_id = request.match_info["ticketId"]
    form = await request.post()
    action = str(form.get("action", ""))
    if action not in ACTIONS:
        raise ConsoleError(400, f"Unknown action {action[:40]!r}: one of {', '.join(ACTIONS)}.")
    reason = clean_reason(form.get("reason"))
    if reason is None:
        return await _ticket_page(request, status=422, error=f"Give a reason ({MIN_REASON} to {MAX_REASON} "
                                                             f"characters, no control characters) to {action}.")
    principal = Principal(sub=user.entity_id, pid=console.ctx.config.pid, role="admin", exp=0, key=user.entity_id)
    try:
        await apply(console.ctx, principal, ticket_id, action, console.now(), reason=reason)
    except ApiError as err:
        if err.status == 404:
            raise ConsoleError(404, f"No ticket {ticket_id!r}.") from None
        return await _ticket_page(request, status=err.status, error=f"Not done: {err.message}.")
    log.info("console: %s did %s on ticket %s (%s)", user.entity_id, action, ticket_id, reason)
    target = request.app.router["console.ticket"].url_for(ticketId=ticket_id).with_query(done=action)
    return see_other(str(target))
