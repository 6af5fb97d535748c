"""Request bodies (pydantic), after the BoB Ticket API v1 definitions.

Types are strict where a wrong type is a client bug worth an error that names the field
(``"eventResult": "3"``, ``"issueMtb": "yes"``); a whole JSON number (``6.0``) is an integer
where the schema says integer. Times are ISO 8601 with a zone, in the basic form BoB itself
uses (``20170521T200000Z``, ``19730614T220000+0200``) or the extended one, one form
throughout; dates ``20170101`` or ``2017-01-01`` (:func:`mtb.timeutil.parse_wire_time`). A
ticketEvent is stored normalised (times UTC extended with milliseconds, dates extended; see
:mod:`server.device_api.events`). The product-side bodies refuse unknown members, so a typo
is an error that names the member rather than a silently ignored field.
"""
from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, PlainValidator, StrictBool,
                      StrictStr, WithJsonSchema)

from mtb.timeutil import WIRE_DATE_PATTERN, WIRE_TIME_PATTERN, format_extended, parse_wire_date, parse_wire_time

Id = Annotated[StrictStr, Field(min_length=1, max_length=200)]
Text = Annotated[StrictStr, Field(max_length=1000)]
Float = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Money = Annotated[float, Field(strict=True, ge=0, le=1e9, allow_inf_nan=False)]


def _whole(value: Any) -> Any:
    """JSON has one number type: ``6.0`` is the integer 6; ``6.5``, ``true`` and ``"6"`` are not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError("must be an integer")
        return int(value)
    return value


def WholeInt(**bounds: Any) -> Any:  # noqa: N802 - a type, used like one
    return Annotated[int, BeforeValidator(_whole), Field(strict=True, **bounds)]


Pid = WholeInt(ge=0, le=2 ** 53)

IsoTime = Annotated[
    datetime, PlainValidator(parse_wire_time), PlainSerializer(format_extended, return_type=str),
    WithJsonSchema({"type": "string", "pattern": WIRE_TIME_PATTERN,
                    "description": "ISO 8601 with a zone, basic (20170521T200000Z, 19730614T220000+0200) or "
                                   "extended (2017-05-21T20:00:00.000Z); stored and served as extended UTC"})]
IsoDate = Annotated[
    date, PlainValidator(parse_wire_date), PlainSerializer(date.isoformat, return_type=str),
    WithJsonSchema({"type": "string", "pattern": WIRE_DATE_PATTERN,
                    "description": "20170101 or 2017-01-01; served as 2017-01-01"})]


class _Part(BaseModel):
    """A structure inside a ticketEvent: its unknown members are dropped."""

    model_config = ConfigDict(extra="ignore")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MtbReference(_Part):
    pid: Pid
    issuerSignature: Annotated[StrictStr, Field(max_length=200)]


class DeviceReference(_Part):
    pid: Pid
    did: Id


class GeoPosition(_Part):
    lat: Annotated[float, Field(strict=True, ge=-90, le=90, allow_inf_nan=False)]
    long: Annotated[float, Field(strict=True, ge=-180, le=180, allow_inf_nan=False)]
    alt: Float | None = None


class StopArea(_Part):
    pid: Pid
    stopAreaId: Id
    nextStopAreaId: Id | None = None


class Zone(_Part):
    pid: Pid
    zoneId: Id


class Service(_Part):
    pid: Pid
    serviceId: Id
    tripId: Id | None = None
    blockId: Id | None = None


class Validator(_Part):
    validatorId: Id | None = None
    location: Text | None = None
    sublocation: Text | None = None


class EventParts(BaseModel):
    """The structures a ticketEvent may carry: the same in what devices send and in what the
    server serves back."""

    mtbReference: MtbReference | None = None
    deviceReference: DeviceReference | None = None
    geo: GeoPosition | None = None
    stopArea: StopArea | None = None
    zone: Zone | None = None
    service: Service | None = None
    validator: Validator | None = None


class TicketEvent(EventParts):
    """A validation or inspection event as a device reports it (BoB ``ticketEvent``). Unknown
    members at the top level are kept while together at most 2 KB (else all are dropped, and
    the answer says which); unknown members inside the known structures are dropped."""

    model_config = ConfigDict(extra="allow")

    ticketId: Id
    localEventId: Id | None = None
    time: IsoTime
    eventType: Literal["inspection", "validation"] | None = None
    eventResult: WholeInt(ge=0, le=9) | None = None
    eventReason: Text | None = None
    eventId: StrictStr | None = Field(None, description="allocated by the server; a client's value is replaced")
    modeOfTransport: Annotated[StrictStr, Field(max_length=50)] | None = None
    operatingDayDate: IsoDate | None = None


class ValidationEvent(TicketEvent):
    """A ticketEvent posted to ``/validation``: ``eventType`` is validation or left out."""

    eventType: Literal["validation"] | None = None  # type: ignore[assignment]


class InspectionEvent(TicketEvent):
    """A ticketEvent posted to ``/inspection``: ``eventType`` is inspection or left out."""

    eventType: Literal["inspection"] | None = None  # type: ignore[assignment]


class PathValidationEvent(ValidationEvent):
    """The body of ``POST /validation/{ticketId}``: the path gives the ticket, so ``ticketId``
    may be left out (if given, it must be the same)."""

    ticketId: Id | None = None  # type: ignore[assignment]


class PathInspectionEvent(InspectionEvent):
    """The body of ``POST /inspection/{ticketId}``: ``ticketId`` may be left out, as above."""

    ticketId: Id | None = None  # type: ignore[assignment]


# What each ingest endpoint takes: kind -> (model of a batch's events, model of the single event)
EVENT_MODELS: dict[str, tuple[type[TicketEvent], type[TicketEvent]]] = {
    "validation": (ValidationEvent, PathValidationEvent), "inspection": (InspectionEvent, PathInspectionEvent)}


class Fare(_Strict):
    amount: Money  # excluding VAT
    currency: Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$")]
    vatAmount: Money
    vatPercent: Annotated[float, Field(strict=True, ge=0, le=100, allow_inf_nan=False)]


class TicketHolder(_Part):
    travellerId: Id
    travellerName: Text | None = None


class ManifestCall(BaseModel):
    """``POST /ticket`` (BoB ``manifestCall``); unknown members are ignored."""

    model_config = ConfigDict(extra="ignore")

    manifestMtbTemplate: Annotated[StrictStr, Field(min_length=1, max_length=32 * 1024)]
    tokenIssuer: Pid | None = None  # the token's issuer (default: the manifest's participant)
    tokenId: Id | None = None  # RFC 7638 thumbprint of a token this server knows
    tokenPublicKey: dict[str, Any] | None = None  # the token's public JWK (registers the token)
    bookingId: Id | None = None
    issueMtb: StrictBool = False
    recoverTicketId: Id | None = None
    requestId: Id | None = None
    startOfValidity: IsoTime | None = None
    ticketHolder: TicketHolder | None = None


class TicketBundleRequest(_Strict):
    ticketIds: Annotated[list[Id], Field(min_length=1, max_length=100)]


class DeviceKeyRequest(_Strict):
    did: Id


class ActiveStatusBody(_Strict):
    activeStatus: StrictBool
