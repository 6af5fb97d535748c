"""Server configuration (``config.json`` in the data directory), checked by pydantic.

A data directory holds everything one deployment needs (``python -m server init`` writes it):

====================================  =====================================================
``config.json``                       this :class:`ServerConfig`
``issuer-key.pem`` (0600)             P-256 key that signs MTBs and manifests
``authtoken-key.pem`` (0600)          P-256 key that signs ``X-BoB-AuthToken`` JWTs
``kdk.json`` (0600)                   device key-derivation keys ``[{"kid", "key"}]``; the
                                      last one is current
``participant-metadata.json``         the BoB participant list served by the API; add other
                                      participants' entries here (reloaded when it changes)
``server.sqlite3``                    the store (tickets, events, deny-list, credentials)
``stops.txt`` (optional)              the operator's GTFS stops, served at ``GET /stops``
====================================  =====================================================
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

CONFIG_FILE = "config.json"
ISSUER_KEY_FILE = "issuer-key.pem"
STOPS_FILE = "stops.txt"  # optional: the operator's GTFS stops, served at GET {base}/stops
AUTH_KEY_FILE = "authtoken-key.pem"
KDK_FILE = "kdk.json"
METADATA_FILE = "participant-metadata.json"


class RoleRateLimit(BaseModel):
    """One role's own limit; a field left out is the default limit's."""

    model_config = ConfigDict(extra="forbid")

    requests: int | None = Field(None, ge=1)
    window_seconds: float | None = Field(None, gt=0)
    block_seconds: float | None = Field(None, ge=0)


# A device's sync sends at most 60 requests a minute by default (agent ``[server]
# max_requests_per_minute``; about 17 in steady state): its role's limit is twice that, and a
# device that overshoots anyway is blocked for one minute rather than five.
DEVICE_RATE_LIMIT = RoleRateLimit(requests=120, window_seconds=60, block_seconds=60)


class RateLimitConfig(BaseModel):
    """Per credential (entity id): ``requests`` in a rolling ``window_seconds``; the next one
    gets 429 and blocks that credential for ``block_seconds``. ``roles`` gives a role its own
    limit (default: the device roles ``val`` and ``ins``); ``{}`` gives every role the default."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    requests: int = Field(100, ge=1)
    window_seconds: float = Field(60.0, gt=0)
    block_seconds: float = Field(300.0, ge=0)
    roles: dict[Literal["val", "ins", "tvm", "pos", "admin"], RoleRateLimit] = Field(
        default_factory=lambda: {"val": DEVICE_RATE_LIMIT, "ins": DEVICE_RATE_LIMIT})

    def for_role(self, role: str | None) -> tuple[int, float, float]:
        """(requests, window, block) for a credential of ``role`` (None: the default)."""
        own = self.roles.get(role) if role is not None else None  # type: ignore[call-overload]
        if own is None:
            return self.requests, self.window_seconds, self.block_seconds
        return (own.requests if own.requests is not None else self.requests,
                own.window_seconds if own.window_seconds is not None else self.window_seconds,
                own.block_seconds if own.block_seconds is not None else self.block_seconds)


class ServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pid: int = Field(1234, ge=0)
    organisation_name: str = "Bundled ticket server"
    issuer_kid: str = ""  # default "<pid>:issuer-1"
    authtoken_kid: str = ""  # default "<pid>:auth-1"
    base_path: str = "/api/v1"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    database: str = "server.sqlite3"  # relative to the data directory
    token_lifetime_seconds: int = Field(3600, ge=10)
    clock_skew_seconds: int = Field(60, ge=0, le=3600)
    manifest_lifetime_seconds: int = Field(3600, ge=10)
    max_batch_events: int = Field(1000, ge=1, le=100_000)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    blacklist_grace_seconds: int = Field(86400, ge=0)  # deny entries outlive validUntil by this
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    # Where the key files live; set by load_config() from the directory read, never saved.
    data_dir: str | None = Field(None, exclude=True)

    @field_validator("base_path")
    @classmethod
    def _base_path(cls, value: str) -> str:
        value = value.rstrip("/")
        if value and not value.startswith("/"):
            raise ValueError("base_path must start with '/'")
        if any(c in value for c in "{}?#% "):
            raise ValueError("base_path must be a plain path")
        return value

    def model_post_init(self, _context: object) -> None:
        if not self.issuer_kid:
            self.issuer_kid = f"{self.pid}:issuer-1"
        if not self.authtoken_kid:
            self.authtoken_kid = f"{self.pid}:auth-1"


def load_config(data_dir: str | Path) -> ServerConfig:
    path = Path(data_dir) / CONFIG_FILE
    config = ServerConfig.model_validate(json.loads(path.read_text(encoding="utf-8")))
    config.data_dir = str(Path(data_dir))
    return config


def save_config(data_dir: str | Path, config: ServerConfig) -> Path:
    path = Path(data_dir) / CONFIG_FILE
    write_file(path, (config.model_dump_json(indent=2) + "\n").encode(), mode=0o644)
    return path


def write_file(path: Path, data: bytes, *, mode: int) -> None:
    """Write a file created with ``mode`` from the start (no window with wider permissions)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(tmp, path)
