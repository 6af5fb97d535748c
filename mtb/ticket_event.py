"""The BoB ``ticketEvent`` as the ticket server accepts it, for checking events where they are made.

An event the server refuses for its shape (a latitude of 95.5, a NaN altitude, a 300-character
id) is parked for ever and blocks nothing but itself; better never to queue one. The device
checks each event against this model before it enters the outbox. The rules are the server's
(``server/models.py``: ids 1-200 characters, reasons up to 1000, pids 0..2**53, positions in
range and finite, times and dates read by the same :func:`mtb.timeutil.parse_wire_time`); a
test runs agent-made events, and generated ones, through the server's own model to show the
two agree. Integers are strict here (the agent writes ``6``, never ``6.0``).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StrictInt, StrictStr, ValidationError

from .timeutil import parse_wire_date, parse_wire_time

EventId = Annotated[StrictStr, Field(min_length=1, max_length=200)]
EventText = Annotated[StrictStr, Field(max_length=1000)]
EventPid = Annotated[StrictInt, Field(ge=0, le=2 ** 53)]
EventTime = Annotated[datetime, PlainValidator(parse_wire_time)]  # as the server reads it: a zone required
EventDate = Annotated[date, PlainValidator(parse_wire_date)]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")  # as the server: unknown members are kept, not refused


class EventMtbReference(_Open):
    pid: EventPid
    issuerSignature: Annotated[StrictStr, Field(max_length=200)]


class EventDeviceReference(_Open):
    pid: EventPid
    did: EventId


class EventGeo(_Open):
    lat: Annotated[float, Field(strict=True, ge=-90, le=90, allow_inf_nan=False)]
    long: Annotated[float, Field(strict=True, ge=-180, le=180, allow_inf_nan=False)]
    alt: Annotated[float, Field(strict=True, allow_inf_nan=False)] | None = None


class EventStopArea(_Open):
    pid: EventPid
    stopAreaId: EventId
    nextStopAreaId: EventId | None = None


class EventZone(_Open):
    pid: EventPid
    zoneId: EventId


class EventService(_Open):
    pid: EventPid
    serviceId: EventId
    tripId: EventId | None = None
    blockId: EventId | None = None


class EventValidator(_Open):
    validatorId: EventId | None = None
    location: EventText | None = None
    sublocation: EventText | None = None


class TicketEventShape(_Open):
    """What a device may send as one ``ticketEvent``."""

    ticketId: EventId
    localEventId: EventId | None = None
    time: EventTime
    eventType: Literal["inspection", "validation"] | None = None
    eventResult: Annotated[StrictInt, Field(ge=0, le=9)] | None = None
    eventReason: EventText | None = None
    eventId: StrictStr | None = None
    mtbReference: EventMtbReference | None = None
    deviceReference: EventDeviceReference | None = None
    geo: EventGeo | None = None
    stopArea: EventStopArea | None = None
    zone: EventZone | None = None
    service: EventService | None = None
    modeOfTransport: Annotated[StrictStr, Field(max_length=50)] | None = None
    validator: EventValidator | None = None
    operatingDayDate: EventDate | None = None


REQUIRED = frozenset({"ticketId", "time"})


def event_problems(event: dict[str, object]) -> dict[str, str]:
    """Top-level member -> why the server would refuse it; empty when the event is acceptable.

    Checked on the dict before it is written as JSON (half the cost of parsing the text again);
    the writer must refuse NaN and infinities (``json.dumps(..., allow_nan=False)``), which JSON
    cannot carry."""
    try:
        TicketEventShape.model_validate(event)
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for error in exc.errors():
            member = str(error["loc"][0]) if error["loc"] else "(event)"
            problems.setdefault(member, f"{'.'.join(map(str, error['loc']))}: {error['msg']}")
        return problems
    return {}
