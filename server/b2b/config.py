"""The B2B API's settings: ``"b2b": {...}`` in the server's ``config.json``."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .calendar import zone


class B2BRateLimit(BaseModel):
    """The published limit: 100 requests a minute per API key, rolling; then 429 and a 5-minute block."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    requests: int = Field(100, ge=1)
    window_seconds: float = Field(60.0, gt=0)
    block_seconds: float = Field(300.0, ge=0)


class B2BConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    base_path: str = "/b2b"  # the published paths (/employees, ...) live under it
    public_url: str | None = None  # origin for HAL links (https://api.example.com); default: the request's
    timezone: str = "UTC"  # the operator's zone: calendar months of job tickets (see calendar.py)
    rate_limit: B2BRateLimit = Field(default_factory=B2BRateLimit)
    jobs: bool = True  # run the roll-over and the webhook sender inside the server
    rollover_interval_seconds: float = Field(300.0, gt=0)
    webhook_poll_seconds: float = Field(2.0, gt=0)
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=60)
    webhook_concurrency: int = Field(8, ge=1, le=100)
    document_font: str | None = None  # a .ttf for the PDF; default DejaVu Sans, else reportlab's Vera

    @field_validator("base_path")
    @classmethod
    def _base_path(cls, value: str) -> str:
        value = value.rstrip("/")
        if not value.startswith("/") or any(c in value for c in "{}?#% "):
            raise ValueError("b2b.base_path must be a plain path starting with '/'")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        zone(value)
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("b2b.public_url must be an http(s) origin")
        return value.rstrip("/") if value else value
