"""ticketEvents as the server stores them: checked against the schema, then normalised, so
what is served back is true to the server's own document.

* Times are stored and served as ISO 8601 extended UTC with milliseconds
  (``2017-05-21T18:00:00.000Z``), whatever form and zone the device sent; ``operatingDayDate``
  as ``2017-01-01``; whole numbers as integers; members sent as ``null`` are left out.
* ``eventType`` is the endpoint's kind when the device left it out; ``eventId`` is the
  server's (a client's value is dropped).
* Unknown members at the top level (a vendor's extension) are kept while, as compact JSON,
  they take at most :data:`EXTRA_LIMIT` bytes together; beyond that none is kept, and the
  answer lists the dropped names. Unknown members inside the known structures are dropped.

A malformed event is a 400 naming ``[index].field`` (BoB's own test client expects 400).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ..errors import field_error, from_validation
from ..models import EVENT_MODELS, TicketEvent
from ..store import NewEvent

EXTRA_LIMIT = 2048
log = logging.getLogger("server.events")
_BATCHES = {kind: TypeAdapter(list[batch]) for kind, (batch, _) in EVENT_MODELS.items()}  # type: ignore[valid-type]


@dataclass
class Normalised:
    event: NewEvent
    dropped: list[str]  # unknown members not kept (over EXTRA_LIMIT)
    source: TicketEvent  # as validated


def mtb_ref(pid: int, issuer_signature: str) -> str:
    """How the store keys an MTB (the fraud check's look-up): its issuer's pid and its issuer
    signature, as ``mtbReference`` gives them."""
    return f"{pid}:{issuer_signature}"


def normalise(event: TicketEvent, kind: str) -> Normalised:
    """The stored form of one validated event (of the endpoint's ``kind``)."""
    extra = dict(event.model_extra or {})
    known = event.model_dump(mode="json", exclude_none=True, exclude={"eventId", *extra})
    known.setdefault("eventType", kind)
    dropped: list[str] = []
    if extra:
        size = len(json.dumps(extra, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        if size <= EXTRA_LIMIT:
            known.update((k, v) for k, v in extra.items() if k not in known)
        else:
            dropped = sorted(extra)
            log.warning("ticketEvent %r: dropped unknown members %s (%d bytes > %d)", event.ticketId,
                        [name[:100] for name in dropped[:10]], size, EXTRA_LIMIT)  # a name is client text: bounded
    ref, geo = event.mtbReference, event.geo
    new = NewEvent(local_event_id=event.localEventId, ticket_id=event.ticketId, event_time=event.time,
                   event_result=event.eventResult, body=known,
                   mtb_ref=mtb_ref(ref.pid, ref.issuerSignature) if ref else None,
                   lat=geo.lat if geo else None, long=geo.long if geo else None)
    return Normalised(new, dropped, event)


def parse_batch(data: Any, kind: str) -> list[Normalised]:
    if not isinstance(data, list):
        raise field_error("(body)", "must be a JSON array of ticketEvents", status=400, code="malformed_event")
    try:
        events = _BATCHES[kind].validate_python(data)
    except ValidationError as exc:
        raise from_validation(exc, status=400, code="malformed_event") from None
    return [normalise(event, kind) for event in events]


def parse_single(data: Any, kind: str, ticket_id: str) -> Normalised:
    if not isinstance(data, dict):
        raise field_error("(body)", "must be a JSON object (one ticketEvent)", status=400, code="malformed_event")
    try:
        event = EVENT_MODELS[kind][1].model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc, status=400, code="malformed_event") from None
    if event.ticketId is not None and event.ticketId != ticket_id:
        raise field_error("ticketId", "differs from the ticket id in the path", status=400, code="malformed_event")
    event.ticketId = ticket_id
    return normalise(event, kind)
