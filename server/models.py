"""Request bodies (pydantic), after the BoB Ticket API v1 definitions.

Types are strict where a wrong type is a client bug worth a 422 (``"eventResult": "3"``,
``"issueMtb": "yes"``); times must carry a zone, in ISO 8601 basic or extended form. ``ticketEvent`` tolerates unknown members
(newer devices, other vendors); the product-side bodies refuse them, so a typo is a 422 that
names the member rather than a silently ignored field.
"""
from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, PlainValidator, StrictBool, StrictInt, StrictStr,
                      WithJsonSchema)

from mtb.timeutil import TimeFormatError, parse_time

Id = Annotated[StrictStr, Field(min_length=1, max_length=200)]
Text = Annotated[StrictStr, Field(max_length=1000)]
Pid = Annotated[StrictInt, Field(ge=0, le=2 ** 53)]
Float = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Money = Annotated[float, Field(strict=True, ge=0, le=1e9, allow_inf_nan=False)]


def _iso_time(value: object) -> datetime:
    """ISO 8601 with a zone, basic (``19730614T220000+0200``, as BoB clients send) or extended;
    never a number (pydantic's own parsing would take ``"946684800"`` as a Unix time)."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string with a zone")
    try:
        return parse_time(value)
    except TimeFormatError as exc:
        raise ValueError(str(exc)) from None


def _iso_date(value: object) -> date:
    """``YYYY-MM-DD`` or BoB's basic ``YYYYMMDD``, nothing else."""
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}|\d{8}", value):
        raise ValueError("must be an ISO 8601 date, YYYY-MM-DD or YYYYMMDD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a calendar date") from None


IsoTime = Annotated[datetime, PlainValidator(_iso_time), WithJsonSchema({"type": "string", "format": "date-time"})]
IsoDate = Annotated[date, PlainValidator(_iso_date), WithJsonSchema({"type": "string", "format": "date"})]


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MtbReference(_Tolerant):
    pid: Pid
    issuerSignature: Annotated[StrictStr, Field(max_length=200)]


class DeviceReference(_Tolerant):
    pid: Pid
    did: Id


class GeoPosition(_Tolerant):
    lat: Annotated[float, Field(strict=True, ge=-90, le=90, allow_inf_nan=False)]
    long: Annotated[float, Field(strict=True, ge=-180, le=180, allow_inf_nan=False)]
    alt: Float | None = None


class StopArea(_Tolerant):
    pid: Pid
    stopAreaId: Id
    nextStopAreaId: Id | None = None


class Zone(_Tolerant):
    pid: Pid
    zoneId: Id


class Service(_Tolerant):
    pid: Pid
    serviceId: Id
    tripId: Id | None = None
    blockId: Id | None = None


class Validator(_Tolerant):
    validatorId: Id | None = None
    location: Text | None = None
    sublocation: Text | None = None


class TicketEvent(_Tolerant):
    """A validation or inspection event as a device reports it (BoB ``ticketEvent``)."""

    ticketId: Id
    localEventId: Id | None = None
    time: IsoTime
    eventType: Literal["inspection", "validation"] | None = None
    eventResult: Annotated[StrictInt, Field(ge=0, le=9)] | None = None
    eventReason: Text | None = None
    eventId: StrictStr | None = None  # allocated by the server; a client's value is replaced
    mtbReference: MtbReference | None = None
    deviceReference: DeviceReference | None = None
    geo: GeoPosition | None = None
    stopArea: StopArea | None = None
    zone: Zone | None = None
    service: Service | None = None
    modeOfTransport: Annotated[StrictStr, Field(max_length=50)] | None = None
    validator: Validator | None = None
    operatingDayDate: IsoDate | None = None


class Fare(_Strict):
    amount: Money  # excluding VAT
    currency: Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$")]
    vatAmount: Money
    vatPercent: Annotated[float, Field(strict=True, ge=0, le=100, allow_inf_nan=False)]


class TicketHolder(_Tolerant):
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
