"""What can go wrong on the link to the server, by what the device should do about it.

- :class:`Transient`: network trouble or a 5xx; try again later with back-off.
- :class:`RateLimited`: a 429; send nothing until ``Retry-After`` has passed (no back-off).
- :class:`AuthFailed`: the credentials, the token or the role were refused; an alarm.
- :class:`TlsRefused`: the server's certificate or key pin did not check out, or it refused
  ours; an alarm, and nothing was sent.
- :class:`Rejected`: another 4xx; the same request will not fare better.
- :class:`BadFeedData`: the server answered, but with data the device will not take.
"""
from __future__ import annotations

EVENT_LEVEL_STATUS = {400, 409, 413, 422}


class SyncError(Exception):
    pass


class Transient(SyncError):
    """Network trouble or a 5xx: try again later with back-off."""


class RateLimited(SyncError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited by the server (HTTP 429), retry after {retry_after:.0f} s")
        self.retry_after = retry_after


class TlsRefused(SyncError):
    """The TLS handshake failed: certificate, pin or client certificate. Nothing was sent."""


class BadFeedData(SyncError):
    """A feed's answer that the device refuses to apply (it keeps what it has)."""


class Rejected(SyncError):
    """A 4xx other than 429: retrying the same request will not help."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status

    @property
    def about_the_events(self) -> bool:
        """Only these answers to an upload say the events are wrong; 401/403/404/405 say the
        device (credentials, role, base URL) is, and parking its events would punish them."""
        return self.status in EVENT_LEVEL_STATUS


class AuthFailed(Rejected):
    """The credentials, the token or the role were refused: a device-level problem, an alarm."""
