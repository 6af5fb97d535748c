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
``server.sqlite3``                    the store (tickets, events, deny list, credentials), unless
                                      ``database`` names a PostgreSQL URL
``stops.txt`` (optional)              the operator's GTFS stops, served at ``GET /stops``
``products.json`` (optional)          the product catalogue (:mod:`server.product_api.catalogue`)
``tickle-macros.json`` (optional)     TICKLE macro sets for validators (``GET /ticklemacros``)
====================================  =====================================================
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from .store import is_database_url

CONFIG_FILE = "config.json"
ISSUER_KEY_FILE = "issuer-key.pem"
STOPS_FILE = "stops.txt"  # optional: the operator's GTFS stops, served at GET {base}/stops
PRODUCTS_FILE = "products.json"  # optional: the product catalogue (Product API)
TICKLE_FILE = "tickle-macros.json"  # optional: TICKLE macro sets (Validation API)
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


class RequestLimit(BaseModel):
    """Per caller: ``requests`` in a rolling ``window_seconds``; the next one gets 429 and blocks
    that caller for ``block_seconds`` (the JobTicket B2B overview's rule: 100 a minute, then 5
    minutes). :mod:`server.auth.ratelimit` applies it."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    requests: int = Field(100, ge=1)
    window_seconds: float = Field(60.0, gt=0)
    block_seconds: float = Field(300.0, ge=0)


class RateLimitConfig(RequestLimit):
    """The BoB API's limit per credential (entity id). ``roles`` gives a role its own limit
    (default: the device roles ``val`` and ``ins``); ``{}`` gives every role the default."""

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


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Stockholm)") from None
    return value


TimeZoneName = Annotated[str, AfterValidator(_time_zone)]  # an IANA name the system knows


class ConsoleConfig(BaseModel):
    """The operator console under ``/console`` (:mod:`server.console`)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    timezone: TimeZoneName = "UTC"  # every time on a page is shown in it (UTC on hover)
    session_idle_seconds: int = Field(1800, ge=60)  # signed out after this long without a page
    session_max_seconds: int = Field(12 * 3600, ge=300)  # and after this long in any case
    page_size: int = Field(50, ge=5, le=500)  # rows of every list


def check_networks(value: list[str]) -> list[str]:
    """Addresses or networks (``10.0.0.0/8``, ``127.0.0.1``); a ValueError names a bad one."""
    for network in value:
        ipaddress.ip_network(network, strict=False)
    return value


class B2BConfig(BaseModel):
    """The JobTicket B2B API (:mod:`server.b2b`; its README says what each choice means)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    base_path: str = "/b2b"  # the published paths (/employees, ...) live under it
    public_url: str | None = None  # origin for HAL links (https://api.example.com); default: the request's
    timezone: TimeZoneName = "UTC"  # the operator's zone: the calendar months of job tickets
    # Per API key, as published: 100 a minute, rolling, then 429 and a 5-minute block. Kept where
    # the server keeps its own limits (``shared_limits``: in the database, for every process).
    rate_limit: RequestLimit = Field(default_factory=RequestLimit)
    jobs: bool = True  # run the roll-over, the document renderer and the webhook sender inside the server
    rollover_interval_seconds: float = Field(300.0, gt=0)
    webhook_poll_seconds: float = Field(2.0, gt=0)
    document_poll_seconds: float = Field(10.0, gt=0)  # documents another process's roll-over left to render
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=60)
    webhook_concurrency: int = Field(8, ge=1, le=100)
    # Deliveries connect only to public addresses, and to these networks (server/b2b/addresses.py):
    # e.g. ["10.20.0.0/16"] for an HR system on the operator's network, ["127.0.0.1"] for a
    # receiver on this host. Never loopback, link-local or private ones otherwise.
    webhook_allowed_networks: Annotated[list[str], AfterValidator(check_networks)] = Field(default_factory=list)
    document_font: str | None = None  # a .ttf for the PDF; default DejaVu Sans, else reportlab's Vera

    @field_validator("base_path")
    @classmethod
    def _base_path(cls, value: str) -> str:
        value = value.rstrip("/")
        if not value.startswith("/") or any(c in value for c in "{}?#% "):
            raise ValueError("b2b.base_path must be a plain path starting with '/'")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("b2b.public_url must be an http(s) origin")
        return value.rstrip("/") if value else value


class LoginLimitConfig(BaseModel):
    """Failed logins (``GET /auth/{entityId}``) per (client address, entity): ``failures`` in a
    rolling ``window_seconds``, then that pair is blocked for ``block_seconds``. A slot is
    taken before the password is hashed, so concurrent guesses cannot overrun the budget."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    failures: int = Field(10, ge=1)
    window_seconds: float = Field(300.0, gt=0)
    block_seconds: float = Field(300.0, ge=0)


class PasswordHashConfig(BaseModel):
    """argon2id parameters for stored passwords (RFC 9106's second recommendation by default).
    A stored hash made with other parameters is re-hashed at the next successful login."""

    model_config = ConfigDict(extra="forbid")

    time_cost: int = Field(3, ge=1, le=20)
    memory_kib: int = Field(64 * 1024, ge=8 * 1024, le=1024 * 1024)
    parallelism: int = Field(4, ge=1, le=16)
    workers: int = Field(2, ge=1, le=64)  # threads of the hashing pool (each hash holds memory_kib)
    queue: int = Field(64, ge=1, le=10_000)  # logins that may wait for a worker; more get 503


class ConnectionLimitConfig(BaseModel):
    """Protection against slow and greedy clients, enforced per TCP connection: a request's
    headers must arrive within ``header_timeout_seconds`` of its first byte (of the connection
    opening, for the first request), a body within ``body_timeout_seconds``; one address may
    hold ``per_address`` connections and the server ``total`` (keep ``total`` below the process's
    open-file limit). Trusted proxies are exempt from ``per_address``."""

    model_config = ConfigDict(extra="forbid")

    header_timeout_seconds: float = Field(10.0, gt=0, le=600)
    body_timeout_seconds: float = Field(30.0, gt=0, le=3600)
    keepalive_timeout_seconds: float = Field(75.0, gt=0, le=3600)
    per_address: int = Field(256, ge=1)
    total: int = Field(900, ge=1)


class ParticipantGrant(BaseModel):
    """What tokens signed by another participant (one listed in the participant metadata) may
    do on this server. Nothing by default; never ``admin``. A token whose ``sub`` is not in
    ``entities`` may only read (GET), whatever its role."""

    model_config = ConfigDict(extra="forbid")

    roles: list[Literal["val", "ins", "pos", "tvm"]] = Field(default_factory=list)
    entities: list[str] = Field(default_factory=list, max_length=100_000)
    _known: frozenset[str] = PrivateAttr(default=frozenset())

    def model_post_init(self, _context: object) -> None:
        self._known = frozenset(self.entities)

    def knows(self, entity: str) -> bool:
        return entity in self._known


class ServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # a refused value may be a secret

    pid: int = Field(1234, ge=0)
    organisation_name: str = "Bundled ticket server"
    issuer_kid: str = ""  # default "<pid>:issuer-1"
    authtoken_kid: str = ""  # default "<pid>:auth-1"
    base_path: str = "/api/v1"
    # The scheme and host clients reach this server under (``https://tickets.example.com``), for
    # the absolute URLs of Location headers; needed behind a reverse proxy. None: from each request.
    public_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # A SQLite file (relative to the data directory) or a PostgreSQL URL, postgresql://user@host/db
    # (no password in it: libpq reads PGPASSWORD or ~/.pgpass)
    database: str = "server.sqlite3"
    database_pool_size: int = Field(8, ge=1, le=200)  # PostgreSQL connections (and store threads) per process
    token_lifetime_seconds: int = Field(3600, ge=10)
    # No token is honoured longer than this after its iat, whatever its exp says (another
    # participant's server chooses its own exp).
    max_token_lifetime_seconds: int = Field(86400, ge=10)
    clock_skew_seconds: int = Field(60, ge=0, le=3600)
    manifest_lifetime_seconds: int = Field(3600, ge=10)
    max_batch_events: int = Field(1000, ge=1, le=100_000)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    blacklist_grace_seconds: int = Field(86400, ge=0)  # deny entries outlive validUntil by this
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    # The uses feed keeps accepted uses this long: the longest passback or travel-speed horizon
    uses_horizon_seconds: int = Field(3600, ge=60, le=7 * 86400)
    # A long-poll (wait=S) is held at most this long, whatever S asks (then an empty page)
    long_poll_max_seconds: int = Field(55, ge=0, le=55)
    # A device that has not reported its state for this long is silent (fleet view, metrics)
    device_silent_seconds: int = Field(900, ge=10)
    # Rate-limit windows and blocks in the database, shared by every server process on it
    # (None: yes on PostgreSQL, no on SQLite; `serve --workers N` with N > 1 sets it)
    shared_limits: bool | None = None
    # Who may read GET {base}/metrics (Prometheus has no BoB token): networks, default loopback only
    metrics_allow: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    b2b: B2BConfig = Field(default_factory=B2BConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    login_limit: LoginLimitConfig = Field(default_factory=LoginLimitConfig)
    password_hash: PasswordHashConfig = Field(default_factory=PasswordHashConfig)
    connections: ConnectionLimitConfig = Field(default_factory=ConnectionLimitConfig)
    # Other participants by pid (text), or "*" for any participant the metadata lists.
    participants: dict[str, ParticipantGrant] = Field(default_factory=dict)
    # Reverse proxies (addresses or networks) whose X-Forwarded-For names the client; from any
    # other peer the header is ignored. Used by the login limit and the connection limits.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Where the key files live; set by load_config() from the directory read, never saved.
    data_dir: str | None = Field(None, exclude=True)

    @field_validator("database")
    @classmethod
    def _database(cls, value: str) -> str:
        return check_database(value)

    @field_validator("metrics_allow", "trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return check_networks(value)

    def metrics_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(n, strict=False) for n in self.metrics_allow]

    @field_validator("base_path")
    @classmethod
    def _base_path(cls, value: str) -> str:
        value = value.rstrip("/")
        if value and not value.startswith("/"):
            raise ValueError("base_path must start with '/'")
        if any(c in value for c in "{}?#% "):
            raise ValueError("base_path must be a plain path")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.rstrip("/")
        if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", value):
            raise ValueError("public_url must be scheme and host only, e.g. https://tickets.example.com")
        return value

    def database_target(self) -> str:
        """What :func:`server.store.open_store` opens: the URL, or the file in the data directory."""
        if is_database_url(self.database):
            return self.database
        return str(Path(self.data_dir or ".") / self.database)

    @field_validator("participants")
    @classmethod
    def _participants(cls, value: dict[str, ParticipantGrant]) -> dict[str, ParticipantGrant]:
        for key in value:
            if key != "*" and not (key.isascii() and key.isdigit()):
                raise ValueError(f"participants: key {key!r} must be a pid (digits) or '*'")
        return value

    def grant_for(self, pid: int) -> ParticipantGrant:
        """The roles and entities another participant has here (none unless configured)."""
        return self.participants.get(str(pid)) or self.participants.get("*") or ParticipantGrant()

    def model_post_init(self, _context: object) -> None:
        if str(self.pid) in self.participants:
            raise ValueError("participants: this server's own pid is governed by its credentials, not a grant")
        if self.max_token_lifetime_seconds < self.token_lifetime_seconds:
            raise ValueError("max_token_lifetime_seconds must be at least token_lifetime_seconds")
        if not self.issuer_kid:
            self.issuer_kid = f"{self.pid}:issuer-1"
        if not self.authtoken_kid:
            self.authtoken_kid = f"{self.pid}:auth-1"


def check_database(value: str) -> str:
    """A SQLite path or a PostgreSQL URL without a password (secrets stay off command lines and out
    of config files: libpq takes the password from ``PGPASSWORD`` or ``~/.pgpass``)."""
    if is_database_url(value):
        parts = urlsplit(value)
        if parts.password is not None or "password=" in parts.query:
            raise ValueError("put the PostgreSQL password in PGPASSWORD or ~/.pgpass (PGPASSFILE), not in the URL")
        if not parts.path.strip("/") and "dbname=" not in parts.query:
            raise ValueError("the PostgreSQL URL names no database (postgresql://user@host/DBNAME)")
    elif "://" in value:
        raise ValueError("database must be a SQLite file name or a postgresql:// URL")
    return value


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
