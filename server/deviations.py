"""Where this server deliberately differs from the BoB Ticket API v1 seed
(``shared/seeds/bob-ticket-api-v1.txt``), and why: one list, shown in the OpenAPI document
(``info.description`` and each affected operation's description) and in ``server/README.md``
(a test checks that the README holds the same table)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Difference:
    where: str
    seed: str
    here: str
    why: str
    operations: tuple[str, ...] = ()  # operationIds whose description repeats it


DIFFERENCES = (
    Difference("PUT /ticket/{ticketId}/active, /refundStatus, /recoverStatus, /revoke",
               "200 with No Content",
               "200 with a JSON body: the active status, refundStatus, recoverStatus, or {ticketId, revoked, state}",
               "the caller sees the outcome (and the amount) without a second call; a client that expects no "
               "content ignores the body",
               ("putTicketActiveStatus", "refundTicket", "recoverTicket", "revokeTicket")),
    Difference("PUT /ticket/{ticketId}/refundStatus, /recoverStatus",
               "400 when the ticket cannot be refunded or recovered",
               "409 (and 409 for every other state conflict: freeze a revoked ticket, refund twice)",
               "the request is well formed; it conflicts with the ticket's state (JobTicket B2B: 409), and a "
               "client must not treat it as its own bug",
               ("refundTicket", "recoverTicket", "putTicketActiveStatus", "revokeTicket")),
    Difference("every error", "No Content", "a JSON body {code, message, details?}; details name the field",
               "a stable machine-readable code and the offending field, as the JobTicket B2B conventions ask"),
    Difference("status codes beyond the seed's", "401, 404 (and 400 where listed)",
               "also 403 (role or participant), 408, 413, 415, 422, 429 with Retry-After, 503 (login pool busy); "
               "the document lists them per operation",
               "roles, limits and body checks the seed does not describe"),
    Difference("times in answers", "ISO 8601, examples in basic form (20170203T123400Z)",
               "ISO 8601 extended UTC with milliseconds (2017-02-03T12:34:00.000Z); both forms accepted in requests",
               "one stored form, which sorts as text; what people and most libraries read"),
    Difference("ticket", "ticketId, issuedAt, ticketPayload, mtb, ticketHolder, activeStatus, recover/refund/"
               "refundable status",
               "also state, pid, productId, validFrom, validUntil, ticketBundleId, manifestId, settlementId, "
               "requestId, bookingId, recoveredFrom, replacedBy",
               "what a back office needs to see; clients ignore members they do not know",
               ("getTicket", "listTickets")),
    Difference("GET /ticket", "travellerId required; no paging",
               "travellerId required except for admin (lists every ticket); pages of at most 100 (page/pageSize or "
               "offset/limit), sortField/sortOrder, X-Total-Count and Link rel=next",
               "an operator lists tickets without knowing a traveller; JobTicket B2B paging conventions",
               ("listTickets",)),
    Difference("GET /ticket/{ticketId}/event", "every event in one answer",
               "pages of at most 100, sortField (eventId, time, receivedAt) and sortOrder",
               "a busy ticket has hundreds of events", ("listTicketEvents",)),
    Difference("ticketMetadata.ticketEventIds", "all event ids of the ticket",
               "the ids of its newest 20 events, oldest first",
               "after one busy day a single-event answer carried 281 ids; GET /ticket/{ticketId}/event pages "
               "through all of them", ("getTicketEvent", "postValidation", "postInspection")),
    Difference("POST /ticket", "201", "201; 200 with the same answer when requestId repeats an earlier call",
               "a retry after a lost answer must not issue twice", ("issueTickets",)),
)


def markdown_table() -> str:
    rows = ["| where | the seed | this server | why |", "| --- | --- | --- | --- |"]
    rows += [f"| {d.where} | {d.seed} | {d.here} | {d.why} |" for d in DIFFERENCES]
    return "\n".join(rows)


def for_operation(operation_id: str) -> str:
    """The differences an operation's description repeats."""
    return " ".join(f"Differs from the BoB Ticket API v1 seed: {d.here} (seed: {d.seed}), because {d.why}."
                    for d in DIFFERENCES if operation_id in d.operations)
