"""Request and response bodies of the Product API (BoB Product API 2.1: ``productManifestRequest``,
``productSetManifest``, ``product``, the category lists)."""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from ..models import Fare, Id
from .catalogue import FareCategory, ProductCategory, SpatialValidity, TravellerCategory

__all__ = ["FareCategory", "ManifestRequest", "ProductCategory", "ProductOut", "ProductSelection",
           "ProductSetManifest", "TravellerCategory"]


class ProductProperty(BaseModel):
    name: Id
    value: Annotated[str, Field(max_length=1000)]


class ProductSelection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    productId: Id
    productProperties: Annotated[list[ProductProperty], Field(max_length=50)] | None = None


class ManifestRequest(BaseModel):
    """``POST /manifest`` (BoB ``productManifestRequest``)."""

    model_config = ConfigDict(extra="forbid")

    productSelections: Annotated[list[ProductSelection], Field(min_length=1, max_length=20)]
    recoverTickets: Annotated[list[Id], Field(max_length=20)] | None = None
    discountCodes: Annotated[list[Id], Field(max_length=20)] | None = None


class ProductOut(BaseModel):
    """A product as the catalogue holds it (members the server does not use are served too)."""

    model_config = ConfigDict(extra="allow")

    productId: str
    productTitle: str | None = None
    productDescription: str | None = None
    validityPeriod: str | None = Field(None, description="ISO 8601 duration, e.g. PT90M")
    productCategoryId: str | None = None
    fareCategoryId: str | None = None
    travellerCategoryId: str | None = None
    fares: list[Fare] | None = None
    spatialValidity: SpatialValidity | None = None
    modesOfTransport: list[str] | None = Field(None, description="beyond BoB: the modes the ticket is valid on")


class ProductSetManifest(BaseModel):
    manifestId: str
    manifest: str = Field(description="base64url of the signed manifest (an ES256 compact JWS) that POST /ticket "
                                      "takes as manifestMtbTemplate")
    productSetTitle: str | None = None
    manifestExpire: str = Field(json_schema_extra={"format": "date-time"})
    distinct: bool = Field(description="always true: a manifest issues tickets once")
    bookingRequired: bool
    fares: list[Fare]
    products: list[ProductOut]
