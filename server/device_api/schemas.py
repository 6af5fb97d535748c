"""Response bodies of the device API (the BoB Validation/Inspection feeds and ingest)."""
from __future__ import annotations

from pydantic import BaseModel, Field


class Jwk(BaseModel):
    kty: str
    kid: str
    crv: str
    x: str
    y: str
    alg: str | None = None


class Participant(BaseModel):
    pid: int
    organisationName: str | None = None
    mtbPublicKeys: list[Jwk]
    authtokenPublicKeys: list[Jwk]


class Kdk(BaseModel):
    kid: str
    key: str = Field(description="base64url, 32 bytes")


class DeviceKey(BaseModel):
    did: str
    kid: str
    deviceKey: str = Field(description="base64url HMAC key (HMAC-SHA-256(KDK, did)[0:16])")


class BlacklistEntry(BaseModel):
    """One deny-list entry, under the name the BoB wire format gives it."""

    blacklistEntryId: int
    ticketId: str | None = None
    travellerId: str | None = None
    tokenId: str | None = None
    expire: str = Field(json_schema_extra={"format": "date-time"},
                        description="ISO 8601 extended UTC; an entry whose expire has passed lifts the ticket")


class Geo(BaseModel):
    lat: float
    long: float


class Use(BaseModel):
    """One accepted use of a ticket, as the uses feed gives it."""

    useId: int
    ticketId: str
    time: str = Field(json_schema_extra={"format": "date-time"}, description="when it was used (the event's time)")
    device: str = Field(description="the credential of the device that accepted it")
    stopAreaId: str | None = None
    zoneId: str | None = None
    geo: Geo | None = None

