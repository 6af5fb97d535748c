"""The agent's configuration: one TOML file per device, checked by pydantic at start.

A mistake in the file stops the agent at start with the field named, rather than at the
first scan on the street.
"""
from __future__ import annotations

import ipaddress
import stat
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mtb.policy import Policy
from .sync.tls import TlsSettings, parse_pin


T = TypeVar("T")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HardwareSection(BaseModel):
    """``kind`` picks the adapter; the other keys are that adapter's options (see hardware/)."""

    model_config = ConfigDict(extra="allow")
    kind: str

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def build(self, section: str, factory: Callable[..., T]) -> T:
        """The adapter, or one line naming the option it does not take (``baud`` for ``baudrate``)."""
        try:
            return factory(self.kind, **self.options())
        except TypeError as exc:  # the adapter's constructor names the unknown or missing key
            raise ConfigError(f"config [{section}] (kind {self.kind!r}): {exc}") from None


class ServerSection(Section):
    environment: Literal["staging", "production"] = "production"
    staging_url: str | None = None
    production_url: str | None = None
    credentials_file: Path | None = None  # one line "entity:password", mode 600
    # Uploads at least this far apart (an event after a quiet spell goes up at once).
    upload_interval_s: float = Field(5.0, gt=0)
    feeds_interval_s: float = Field(60.0, gt=0)
    # The deny list and the uses feed pushed: one request held open up to this long (the server
    # answers when an entry commits); 0 polls them every feeds_interval_s instead.
    long_poll_s: float = Field(50.0, ge=0, le=55)
    long_poll_gap_s: float = Field(1.0, gt=0)  # after entries came, the next hold this much later
    # Online, ask the back office's GET /fraudcheck about a ticket about to be accepted, and
    # wait for the answer at most this long after the scan was read (a refusal never waits).
    fraudcheck: bool = True
    fraudcheck_budget_ms: int = Field(150, ge=1, le=1000)
    batch_size: int = Field(200, ge=1, le=1000)
    timeout_s: float = Field(10.0, gt=0)
    # At most this many requests in any minute, feeds, uploads and tokens together: under the
    # server's limit for devices (120 a minute by default) with room to spare.
    max_requests_per_minute: int = Field(60, ge=1)
    ca_file: Path | None = None  # the CA that issued the server's certificate (default: the system's)
    client_cert: Path | None = None  # mutual TLS: the device's certificate (PEM) ...
    client_key: Path | None = None  # ... and its key (PEM, mode 600)
    # SHA-256 of the server's SubjectPublicKeyInfo (hex or base64); several for a key rollover.
    pin_sha256: list[str] = Field(default_factory=list)
    allow_insecure_http: bool = False  # http:// only with this (the simulator, tests on loopback)

    @field_validator("pin_sha256", mode="before")
    @classmethod
    def _pins(cls, value: Any) -> Any:
        pins = [value] if isinstance(value, str) else value
        for pin in pins if isinstance(pins, list) else []:
            parse_pin(pin)  # a ValueError names the bad pin
        return pins

    @model_validator(mode="after")
    def _tls(self) -> "ServerSection":
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together")
        url = self.base_url or ""
        if url.lower().startswith("http://") and not self.allow_insecure_http:
            raise ValueError(f"{self.environment}_url is http://: use https:// "
                             "(or allow_insecure_http = true, for a test on loopback)")
        if not url.lower().startswith(("https://", "http://")) and url:
            raise ValueError(f"{self.environment}_url must be an https:// URL")
        return self

    @property
    def base_url(self) -> str | None:
        return self.staging_url if self.environment == "staging" else self.production_url

    def tls(self) -> TlsSettings:
        return TlsSettings(self.ca_file, self.client_cert, self.client_key,
                           frozenset(parse_pin(pin) for pin in self.pin_sha256))


class ClockSection(Section):
    """How far the device clock may be from the server's before an alarm (``max_skew_seconds``), and
    how far below the clock floor (the server's time at the last contact, the newest recorded
    event) it may read before the device goes out of service. The floor's tolerance must cover
    the skew allowed, or a clock slightly behind the server's would stop the device."""

    max_skew_seconds: float = Field(30.0, gt=0)
    floor_tolerance_seconds: float = Field(60.0, gt=0)

    @model_validator(mode="after")
    def _tolerance_covers_skew(self) -> "ClockSection":
        if self.floor_tolerance_seconds < self.max_skew_seconds:
            raise ValueError("floor_tolerance_seconds must be at least max_skew_seconds")
        return self


class ServiceSection(Section):
    service_id: str
    trip_id: str | None = None
    block_id: str | None = None


class PolicySection(Section):
    passback_window_s: float = Field(600.0, ge=0)
    # device: this device's acceptances only; stop-area: also other devices' at the same stop
    # area; operator: every device's (from the server's uses feed, as last received)
    passback_scope: Literal["device", "stop-area", "operator"] = "device"
    # other devices' uses kept this long (counted back from the server's time); set it to the
    # server's uses_horizon_seconds
    fleet_uses_horizon_s: float = Field(3600.0, gt=0)
    max_speed_kmh: float = Field(200.0, gt=0)
    device_time_window_s: float = Field(30.0, ge=0)
    # 't' in the device header: not required by default (real wallets send none), required for
    # the wallets that stamp it, by pid: [policy.require_device_time_by_pid] "1234" = true
    require_device_time: bool = False
    require_device_time_by_pid: dict[int, bool] = {}
    timezone: str = "Europe/Stockholm"
    metadata_max_age_s: float = Field(7 * 86400, gt=0)
    validate_with_stale_metadata: bool = True
    history_days: float = Field(35.0, gt=0)  # usage history kept for passback, fraud and inspectors

    def policy(self) -> Policy:
        return Policy(passback_window_s=self.passback_window_s, passback_scope=self.passback_scope,
                      max_speed_kmh=self.max_speed_kmh,
                      device_time_window_s=self.device_time_window_s,
                      require_device_time=self.require_device_time,
                      require_device_time_by_pid={str(pid): required
                                                  for pid, required in self.require_device_time_by_pid.items()},
                      timezone=self.timezone)


class MetricsSection(Section):
    """Prometheus text format on ``http://host:port/metrics``: off unless a port is given, and
    only on a loopback address (nothing on the device listens to the network)."""

    port: int | None = Field(None, ge=1, le=65535)
    host: str = "127.0.0.1"

    @field_validator("host")
    @classmethod
    def _loopback(cls, host: str) -> str:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise ValueError(f"metrics are served on a loopback address only (got {host!r})")
        return host


class LoggingSection(Section):
    format: Literal["text", "json"] = "text"  # json: one object a line, for a fleet's log collector


class AgentConfig(Section):
    # Bounded as the server's ticketEvent is: a value it refuses would park every event.
    device_id: str = Field(min_length=1, max_length=200)
    mode: Literal["validation", "inspection"] = "validation"
    location: str | None = None  # vehicle, platform, handheld
    sublocation: str | None = None
    db: Path
    operator_pid: int | None = Field(None, ge=0, le=2 ** 53)
    mode_of_transport: str | None = None
    # full: each scan's events are fsynced before green (a power cut loses nothing);
    # normal: survives a crash of the process, not a power cut.
    durability: Literal["full", "normal"] = "full"
    stops_file: Path | None = None  # GTFS stops.txt, imported into the cache at start
    stop_radius_m: float = Field(150.0, gt=0)
    # scans in a row that could not be recorded before the device says "out of service", raises an
    # alarm and stops feeding the watchdog (systemd then restarts it, and the start check runs)
    max_failed_recordings: int = Field(3, ge=1)
    reader: HardwareSection
    position: HardwareSection | None = None
    feedback: HardwareSection = HardwareSection(kind="console")
    server: ServerSection | None = None
    service: ServiceSection | None = None
    policy: PolicySection = PolicySection()
    clock: ClockSection = ClockSection()
    logging: LoggingSection = LoggingSection()
    metrics: MetricsSection = MetricsSection()

    @model_validator(mode="after")
    def _server_has_url(self) -> "AgentConfig":
        if self.server is not None and self.server.base_url is None:
            raise ValueError(f"server.{self.server.environment}_url is required for environment "
                             f"{self.server.environment!r}")
        return self


class ConfigError(ValueError):
    pass


def load_config(path: str | Path) -> AgentConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"config {path}: {problems}") from None
    base = path.parent
    for field in ("db", "stops_file"):  # relative paths are relative to the config file
        value = getattr(config, field)
        if value is not None and not value.is_absolute():
            setattr(config, field, base / value)
    for field in ("credentials_file", "ca_file", "client_cert", "client_key"):
        value = getattr(config.server, field, None)
        if value is not None and not value.is_absolute():
            setattr(config.server, field, base / value)
    return config


def read_credentials(path: Path) -> tuple[str, str]:
    """``entity:password`` from a file kept out of the config (and out of logs), readable by its
    owner only: a password others can read is refused, as ssh refuses such a key."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(f"credentials file {path} is open to others (mode {mode:o}): "
                              f"chmod 600 {path} (owner: the agent's user)")
        entity, sep, password = path.read_text(encoding="utf-8").strip().partition(":")
    except OSError as exc:
        raise ConfigError(f"cannot read credentials {path}: {exc.strerror}") from exc
    if not sep or not entity or not password:
        raise ConfigError(f"credentials file {path} must hold one line 'entity:password'")
    return entity, password
