"""Tickets: issuing from a manifest, the life-cycle state machine, refund/recover amounts.

State machine (read this table; :data:`TRANSITIONS` below is the same table in code)
=====================================================================================

=========  ======  =========================================================================
state      usable  meaning
=========  ======  =========================================================================
active     yes     issued and usable (``activeStatus: true``)
frozen     no      ``PUT /ticket/{id}/active`` ``false``; ``true`` thaws it back to active
recovered  no      ``PUT /ticket/{id}/recoverStatus``: its MTB is dead, its remaining value
                   waits to be re-issued by ``POST /ticket`` with ``recoverTicketId``
replaced   no      a recovered ticket whose value went into a new ticket (terminal)
refunded   no      ``PUT /ticket/{id}/refundStatus`` (terminal)
revoked    no      ``PUT /ticket/{id}/revoke`` (terminal)
=========  ======  =========================================================================

=========  ======================  =========  ==========  ===================================
action     from                    to         deny-list   else
=========  ======================  =========  ==========  ===================================
freeze     active                  frozen     add         frozen: no-op 200; others 409
thaw       frozen                  active     lift        active: no-op 200; others 409
refund     active, frozen          refunded   add         409 (refunded, revoked, recovered,
                                                          replaced, or validity over)
recover    active, frozen          recovered  add         409 (as refund)
revoke     active, frozen,         revoked    add         revoked: no-op 200; refunded,
           recovered                                      replaced: 409
reissue    recovered               replaced   --          409 (POST /ticket recoverTicketId)
=========  ======================  =========  ==========  ===================================

``add`` puts ``{ticketId, travellerId?, expire}`` on the deny-list with ``expire`` =
max(validUntil, now) + ``blacklist_grace_seconds``; ``lift`` adds an entry for the ticket whose
``expire`` is already past (now - ``clock_skew_seconds``, so a device whose clock lags a little
still sees it expired): an expired entry lifts the earlier ones, the newest entry of a ticket
wins. Refund and recover also need the validity not to be over; the amount is the
fare while the validity has not started, then pro rata of the validity left (VAT alike).
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from urllib.parse import quote

import mtb
from mtb import b64url_encode, keys, signer
from mtb.timeutil import format_extended

from ..auth import Principal
from ..context import Context
from ..errors import ApiError, field_error
from ..models import ManifestCall
from ..store import (BundleRecord, DenyEntry, DuplicateManifest, EventRecord, StateConflict, TicketRecord,
                     TokenRecord, WhitelistEntry)
from .manifest import Item, Manifest, verify as verify_manifest

USABLE = frozenset({"active"})
STATES = ("active", "frozen", "recovered", "replaced", "refunded", "revoked")


@dataclass(frozen=True)
class Transition:
    action: str
    sources: frozenset[str]
    target: str
    blacklist: str | None  # "add", "lift" or None
    noop_from: frozenset[str] = frozenset()
    needs_value: bool = False  # refund/recover: only while the validity is not over


TRANSITIONS = {t.action: t for t in (
    Transition("freeze", frozenset({"active"}), "frozen", "add", noop_from=frozenset({"frozen"})),
    Transition("thaw", frozenset({"frozen"}), "active", "lift", noop_from=frozenset({"active"})),
    Transition("refund", frozenset({"active", "frozen"}), "refunded", "add", needs_value=True),
    Transition("recover", frozenset({"active", "frozen"}), "recovered", "add", needs_value=True),
    Transition("revoke", frozenset({"active", "frozen", "recovered"}), "revoked", "add",
               noop_from=frozenset({"revoked"})),
    Transition("reissue", frozenset({"recovered"}), "replaced", None),
)}

# A single-event answer lists the ids of the ticket's newest events only (a busy ticket has
# hundreds); GET /ticket/{id}/event pages through all of them.
RECENT_EVENT_IDS = 20


def new_id(prefix: str = "") -> str:
    return prefix + secrets.token_hex(10)


def segment(text: str) -> str:
    """A path segment the server writes into a URL: percent-encoded, so an id a client chose
    (``..``, ``a/b``, a newline) can neither point elsewhere nor break the header."""
    return quote(text, safe="") if text not in (".", "..") else text.replace(".", "%2E")


# --- amounts and JSON -------------------------------------------------------------------------

def remaining_value(ticket: TicketRecord, now: datetime) -> dict[str, Any] | None:
    """What a refund or recover is worth now; None once the validity is over."""
    if now >= ticket.valid_until:
        return None
    fare = ticket.fare
    if now <= ticket.valid_from:
        share = 1.0
    else:
        share = (ticket.valid_until - now) / (ticket.valid_until - ticket.valid_from)
    return {"amount": round(fare["amount"] * share, 2), "currency": fare["currency"],
            "vatAmount": round(fare["vatAmount"] * share, 2), "vatPercent": fare["vatPercent"]}


def refundable_status(ticket: TicketRecord, now: datetime) -> dict[str, Any]:
    value = remaining_value(ticket, now) if ticket.state in TRANSITIONS["refund"].sources else None
    return {"refundable": True, "refundableAmount": value} if value else {"refundable": False}


def recoverable_status(ticket: TicketRecord, now: datetime) -> dict[str, Any]:
    value = remaining_value(ticket, now) if ticket.state in TRANSITIONS["recover"].sources else None
    return {"recoverable": True, "recoverableAmount": value} if value else {"recoverable": False}


def refund_status(ticket: TicketRecord) -> dict[str, Any]:
    if ticket.state == "refunded":
        return {"refunded": True, "refundedAmount": ticket.refunded_amount}
    return {"refunded": False}


def recover_status(ticket: TicketRecord) -> dict[str, Any]:
    if ticket.state in ("recovered", "replaced") or ticket.recovered_amount is not None:
        return {"recovered": True, "recoveredAmount": ticket.recovered_amount}
    return {"recovered": False}


def ticket_json(ticket: TicketRecord, now: datetime) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ticketId": ticket.ticket_id, "issuedAt": format_extended(ticket.issued_at),
        "ticketPayload": ticket.payload, "mtb": ticket.mtb, "activeStatus": ticket.state in USABLE,
        "recoverStatus": recover_status(ticket), "refundStatus": refund_status(ticket),
        "refundableStatus": refundable_status(ticket, now),
        # beyond the seed's ticket schema (clients ignore unknown members):
        "state": ticket.state, "pid": ticket.pid, "productId": ticket.product_id,
        "validFrom": format_extended(ticket.valid_from), "validUntil": format_extended(ticket.valid_until),
        "ticketBundleId": ticket.bundle_id, "manifestId": ticket.manifest_id,
        "settlementId": ticket.settlement_id,
    }
    if ticket.traveller_id is not None:
        body["ticketHolder"] = {"travellerId": ticket.traveller_id}
        if ticket.traveller_name is not None:
            body["ticketHolder"]["travellerName"] = ticket.traveller_name
    for key, value in (("requestId", ticket.request_id), ("bookingId", ticket.booking_id),
                       ("recoveredFrom", ticket.recovered_from), ("replacedBy", ticket.replaced_by)):
        if value is not None:
            body[key] = value
    return body


def event_result_json(event: EventRecord, ticket: TicketRecord | None = None,
                      event_ids: list[int] | None = None) -> dict[str, Any]:
    """A stored event as BoB's ``ticketEventResult``, with the ticket's state when the server knows it."""
    body = {**event.body, "time": format_extended(event.event_time), "eventId": str(event.event_id)}
    result: dict[str, Any] = {"ticketEvent": body}
    if event.event_result is not None:  # an event reported without a result is not claimed valid
        result["ticketEventStatus"] = event.event_result
    if ticket is not None:
        metadata: dict[str, Any] = {"relativeValidityStart": format_extended(ticket.valid_from)}
        if event_ids is not None:
            metadata["ticketEventIds"] = [str(i) for i in event_ids]
        result["ticketMetadata"] = metadata
        if ticket.state not in USABLE:
            result["ticketEventInspectMessage"] = f"Ticket is {ticket.state} on the server"
            result["ticketEventPassengerMessage"] = "Ticket not valid"
    return result


def bundle_json(bundle: BundleRecord) -> dict[str, Any]:
    return {"ticketBundleId": bundle.bundle_id, "manifestId": bundle.manifest_id,
            "settlementId": bundle.settlement_id, "mtb": bundle.mtb, "ticketIds": bundle.ticket_ids}


# --- access -----------------------------------------------------------------------------------

async def load_ticket(ctx: Context, principal: Principal, ticket_id: str) -> TicketRecord:
    """The ticket, if it exists and the caller's participant owns it (admin: any); else 404."""
    ticket = await ctx.run(ctx.store.get_ticket, ticket_id)
    if not principal.sees(ticket):
        raise ApiError(404, f"ticket {ticket_id!r} not found", code="ticket_not_found")
    return ticket


# --- minting ----------------------------------------------------------------------------------

def _spec(item: Item, ticket_id: str, vf: datetime, vu: datetime, traveller_id: str | None) -> signer.TicketSpec:
    return signer.TicketSpec(ticket_id=ticket_id, valid_from=vf, valid_until=vu, zones=item.zones,
                             stop_areas=item.stopAreas, modes=item.modes, traveller_id=traveller_id,
                             category=item.product.category, product_id=item.product.productId)


def mint(ctx: Context, specs: list[signer.TicketSpec]) -> str:
    ring = ctx.keyring
    container = signer.mint(ring.issuer_key, pid=ring.pid, kid=ring.issuer_kid, tickets=specs)
    return str(mtb.wrap_transport(container, "zlib+base64url"))


def spec_of(ticket: TicketRecord) -> signer.TicketSpec:
    payload = json.loads(mtb.b64url_decode(ticket.payload))
    return signer.TicketSpec(ticket_id=ticket.ticket_id, valid_from=ticket.valid_from,
                             valid_until=ticket.valid_until, zones=payload.get("zones"),
                             stop_areas=payload.get("stopAreas"), modes=payload.get("modes"),
                             traveller_id=ticket.traveller_id, category=ticket.category,
                             product_id=ticket.product_id)


def _payload(manifest: Manifest, item: Item, ticket_id: str, vf: datetime, vu: datetime,
             traveller_id: str | None) -> str:
    body = {"ticketId": ticket_id, "pid": manifest.pid, "manifestId": manifest.manifestId,
            "productId": item.product.productId, "category": item.product.category,
            "validFrom": format_extended(vf), "validUntil": format_extended(vu), "zones": item.zones,
            "modes": item.modes, "stopAreas": item.stopAreas, "travellerId": traveller_id,
            "fare": item.fare.model_dump()}
    return b64url_encode(json.dumps({k: v for k, v in body.items() if v is not None},
                                    separators=(",", ":"), ensure_ascii=False).encode())


# --- issuing ----------------------------------------------------------------------------------

@dataclass
class IssueResult:
    status: int  # 201 new, 200 a replay of the same requestId
    body: dict[str, Any]
    location: str  # the bundle's path under the base path


async def bound_token(ctx: Context, call: ManifestCall, manifest_pid: int, now: datetime) -> TokenRecord | None:
    """The token the tickets are bound to (``tokenPublicKey`` registers it; ``tokenId`` alone
    must name a known one); None when the call names none. A revoked token gets no tickets."""
    if call.tokenPublicKey is None and call.tokenId is None:
        return None
    if call.tokenPublicKey is not None:
        try:
            public = keys.public_token_jwk(call.tokenPublicKey)
            thumbprint = keys.jwk_thumbprint(public)
        except keys.KeyMaterialError as exc:
            raise field_error("tokenPublicKey", str(exc)) from None
        if call.tokenId is not None and call.tokenId != thumbprint:
            raise field_error("tokenId", "is not the RFC 7638 thumbprint of tokenPublicKey")
        token = TokenRecord(thumbprint, call.tokenIssuer if call.tokenIssuer is not None else manifest_pid,
                            public, now)
        await ctx.run(ctx.store.add_token, token)
    else:
        found = await ctx.run(ctx.store.get_token, call.tokenId)
        if found is None:
            raise field_error("tokenId", "unknown token (give tokenPublicKey to register it)")
        token = found
    if await ctx.run(lambda: ctx.store.denied([("token", token.token_id)], now)):
        raise ApiError(409, f"token {token.token_id} is revoked", code="token_revoked",
                       details=[{"field": "tokenId", "message": "revoked"}])
    return token


def _issue_response(ctx: Context, bundle: BundleRecord, issue_mtb: bool, status: int) -> IssueResult:
    body: dict[str, Any] = {"settlementId": bundle.settlement_id, "ticketIds": bundle.ticket_ids}
    if issue_mtb:
        body["ticketBundle"] = bundle_json(bundle)
    return IssueResult(status, body, f"/ticketbundle/{segment(bundle.bundle_id)}")


async def issue(ctx: Context, principal: Principal, call: ManifestCall, now: datetime) -> IssueResult:
    manifest = checked_manifest(ctx, principal, call, now)
    if call.requestId is not None:
        earlier = await ctx.run(ctx.store.find_issue, manifest.pid, call.requestId)
        if earlier is not None:
            if earlier.manifest_id != manifest.manifestId:
                raise ApiError(409, f"requestId {call.requestId!r} was used with another manifest",
                               code="request_id_reused", details=[{"field": "requestId", "message": "reused"}])
            return _issue_response(ctx, earlier, call.issueMtb, 200)  # a retry: same answer, nothing new
    valid_from = _valid_from(ctx, manifest, call, now)

    replaces = None
    if call.recoverTicketId is not None:
        old = await ctx.run(ctx.store.get_ticket, call.recoverTicketId)
        if not principal.sees(old):
            raise field_error("recoverTicketId", "no such ticket")
        if old.state != "recovered":
            raise ApiError(409, f"ticket {old.ticket_id} is {old.state}, not recovered", code="invalid_state",
                           details=[{"field": "recoverTicketId", "message": f"ticket is {old.state}"}])
        replaces = old.ticket_id

    token = await bound_token(ctx, call, manifest.pid, now)
    bundle, records = _build(ctx, manifest, call, now, valid_from, replaces)
    whitelist = [WhitelistEntry(token.token_id, r.ticket_id, r.mtb, r.valid_from, r.valid_until, bundle.created_at)
                 for r in records] if token is not None else []
    try:
        await ctx.run(lambda: ctx.store.create_issue(bundle, records, actor=principal.key, replaces=replaces,
                                                     whitelist=whitelist))
    except DuplicateManifest:
        raise ApiError(409, "this manifest (or requestId) was already used to issue tickets",
                       code="manifest_already_used",
                       details=[{"field": "manifestMtbTemplate", "message": "already used"}]) from None
    except StateConflict as exc:
        raise ApiError(409, str(exc), code="invalid_state") from None
    return _issue_response(ctx, bundle, call.issueMtb, 201)


def prepare_issue(ctx: Context, principal: Principal, call: ManifestCall,
                  now: datetime) -> tuple[BundleRecord, list[TicketRecord]]:
    """The records ``POST /ticket`` would store for ``call`` (manifest verified, validity
    checked, MTBs signed), for a caller that writes them in a transaction of its own with
    :func:`server.store.core.write_issues` (the B2B roll-over signs a batch, then stores it under
    its lock). Pure: no store access, so no ``requestId`` replay, no ``recoverTicketId`` and no
    token binding (its token is looked up and registered in the store)."""
    if any(v is not None for v in (call.requestId, call.recoverTicketId, call.tokenId, call.tokenPublicKey)):
        raise ValueError("prepare_issue takes no requestId, recoverTicketId, tokenId or tokenPublicKey")
    manifest = checked_manifest(ctx, principal, call, now)
    return _build(ctx, manifest, call, now, _valid_from(ctx, manifest, call, now), None)


def checked_manifest(ctx: Context, principal: Principal, call: ManifestCall, now: datetime) -> Manifest:
    manifest = verify_manifest(ctx.keyring, call.manifestMtbTemplate, now, ctx.config.clock_skew_seconds)
    if not principal.admin and manifest.pid != principal.pid:
        raise ApiError(403, f"manifest is for participant {manifest.pid}, the token for {principal.pid}",
                       code="wrong_participant")
    return manifest


def _valid_from(ctx: Context, manifest: Manifest, call: ManifestCall, now: datetime) -> datetime:
    """When the tickets start: now, or the call's ``startOfValidity`` if the manifest allows it."""
    now = now.replace(microsecond=0)
    if call.startOfValidity is None:
        return now
    start = call.startOfValidity
    if start < now - timedelta(seconds=ctx.config.clock_skew_seconds):
        raise field_error("startOfValidity", "must not be in the past")
    if start.timestamp() > manifest.latestStart:
        raise field_error("startOfValidity", "is later than the manifest allows")
    return max(start.replace(microsecond=0), now)


def _build(ctx: Context, manifest: Manifest, call: ManifestCall, now: datetime, valid_from: datetime,
           replaces: str | None) -> tuple[BundleRecord, list[TicketRecord]]:
    """The bundle and its tickets (each item's count, with the item's validity), MTBs signed."""
    now = now.replace(microsecond=0)
    holder = call.ticketHolder
    traveller_id = holder.travellerId if holder else None
    bundle_id, settlement_id = new_id("tb-"), new_id("st-")
    records, specs = [], []
    for item in manifest.items:
        valid_until = valid_from + timedelta(seconds=item.validitySeconds)
        for _ in range(item.count):
            tid = new_id()
            spec = _spec(item, tid, valid_from, valid_until, traveller_id)
            specs.append(spec)
            records.append(TicketRecord(
                ticket_id=tid, pid=manifest.pid, bundle_id=bundle_id, manifest_id=manifest.manifestId,
                settlement_id=settlement_id, issued_at=now, valid_from=valid_from, valid_until=valid_until,
                fare=item.fare.model_dump(), state="active",
                payload=_payload(manifest, item, tid, valid_from, valid_until, traveller_id), mtb=mint(ctx, [spec]),
                product_id=item.product.productId, category=item.product.category, traveller_id=traveller_id,
                traveller_name=holder.travellerName if holder else None, request_id=call.requestId,
                booking_id=call.bookingId, recovered_from=replaces, updated_at=now))
    ticket_ids = [r.ticket_id for r in records]
    bundle = BundleRecord(bundle_id=bundle_id, pid=manifest.pid, manifest_id=manifest.manifestId,
                          settlement_id=settlement_id, mtb=records[0].mtb if len(specs) == 1 else mint(ctx, specs),
                          created_at=now, ticket_ids=ticket_ids, request_id=call.requestId)
    return bundle, records


# --- transitions ------------------------------------------------------------------------------

async def apply(ctx: Context, principal: Principal, ticket_id: str, action: str, now: datetime, *,
                reason: str | None = None) -> TicketRecord:
    """Run one action of the state machine; returns the ticket as it is afterwards. ``reason``
    (free text, e.g. typed in the console) is kept in the ticket's log with the actor."""
    rule = TRANSITIONS[action]
    ticket = await load_ticket(ctx, principal, ticket_id)
    if ticket.state in rule.noop_from:
        return ticket
    if ticket.state not in rule.sources:
        raise ApiError(409, f"cannot {action} a ticket that is {ticket.state}", code="invalid_state",
                       details=[{"field": "state", "message": ticket.state}])
    changes: dict[str, Any] = {}
    if rule.needs_value:
        value = remaining_value(ticket, now)
        if value is None:
            raise ApiError(409, f"cannot {action} a ticket whose validity is over", code="validity_over")
        changes["refunded_amount" if action == "refund" else "recovered_amount"] = value
    entry = None
    if rule.blacklist == "add":
        expire = max(ticket.valid_until, now) + timedelta(seconds=ctx.config.blacklist_grace_seconds)
        entry = DenyEntry(expire=expire, ticket_id=ticket.ticket_id, reason=action, created_at=now)
    elif rule.blacklist == "lift":  # already expired, even on a device whose clock lags ours a little
        lifted = now - timedelta(seconds=ctx.config.clock_skew_seconds)
        entry = DenyEntry(expire=lifted, ticket_id=ticket.ticket_id, reason=action, created_at=now)
    try:
        await ctx.run(ctx.store.transition, ticket.ticket_id, ticket.state, rule.target, at=now,
                      actor=principal.key, action=action, changes=changes, deny=entry, reason=reason)
    except StateConflict as exc:
        raise ApiError(409, str(exc), code="invalid_state") from None
    if entry is not None and ctx.feeds is not None:  # (a CLI's context serves no long-polls)
        ctx.feeds["deny"].poke()  # this process's long-polls at once (other processes: NOTIFY or their poll)
    updated = await ctx.run(ctx.store.get_ticket, ticket.ticket_id)
    assert updated is not None
    return updated


# --- bundles ----------------------------------------------------------------------------------

async def make_bundle(ctx: Context, principal: Principal, ticket_ids: list[str], now: datetime) -> BundleRecord:
    if len(set(ticket_ids)) != len(ticket_ids):
        raise field_error("ticketIds", "lists a ticket twice")
    tickets = []
    for index, tid in enumerate(ticket_ids):
        ticket = await ctx.run(ctx.store.get_ticket, tid)
        if not principal.sees(ticket):
            raise field_error(f"ticketIds[{index}]", f"no such ticket {tid!r}")
        tickets.append(ticket)
    origins = {t.bundle_id for t in tickets}
    if len(origins) > 1:
        raise ApiError(400, "the tickets come from different ticket bundles", code="different_bundles",
                       details=[{"field": "ticketIds", "message": f"{len(origins)} bundles: {sorted(origins)}"}])
    dead = [t for t in tickets if t.state not in ("active", "frozen")]
    if dead:
        raise ApiError(409, f"ticket {dead[0].ticket_id} is {dead[0].state}", code="invalid_state")
    first = tickets[0]
    bundle = BundleRecord(bundle_id=new_id("tb-"), pid=first.pid, manifest_id=first.manifest_id,
                          settlement_id=first.settlement_id, mtb=mint(ctx, [spec_of(t) for t in tickets]),
                          created_at=now, ticket_ids=list(ticket_ids), parent_id=first.bundle_id)
    await ctx.run(ctx.store.create_bundle, bundle)
    return bundle
