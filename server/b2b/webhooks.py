"""Webhooks: the envelope, the signature, the delivery schedule. Pure functions; the queue is
in :mod:`server.b2b.store` and the sender in :mod:`server.b2b.delivery`.

Signature (the public pages only say there is an ``X-Signing-Signature`` header)
================================================================================

Each endpoint has its own signing secret (``whsec_`` + 43 base64url characters, shown once
when the operator registers the endpoint). Every delivery attempt carries::

    X-Signing-Signature: t=<unix seconds of this attempt>,v1=<hex HMAC-SHA-256>

where the HMAC key is the secret's UTF-8 bytes and the message is ``f"{t}."`` (ASCII)
followed by the raw request body, byte for byte. A receiver recomputes it over the body as
received (before any JSON parsing), compares in constant time, and refuses a ``t`` more than
300 s from its own clock: a captured request cannot be replayed later, and each retry is
signed afresh. Within the window a receiver de-duplicates on ``event.id`` (delivery is at
least once). ``v1`` may appear more than once while a secret is being rotated; one match is
enough. ``deploy/examples/webhook_receiver.py`` is a receiver that does exactly this.

Schedule
========

A delivery succeeds on any 2xx within 10 s (redirects are not followed). After a failure the
next try waits ``min(1 h, 30 s * 2**(attempts-1))``, times a random factor in [0.5, 1.0)
(jitter, so a recovering receiver is not hit by every queue at once). A delivery is retried
until it is 24 h old, then marked ``failed`` (the log keeps it). An endpoint that has failed
every attempt for 24 h is disabled; the operator sees it in ``b2b webhooks list`` and
re-enables it, which retries what it missed. Deliveries to one endpoint go in order per
employee: the next event of an employee waits until the one before it is delivered or failed.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import random
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

HEADER = "X-Signing-Signature"
SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 300
TIMEOUT_SECONDS = 10.0
FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=1)
RETRY_FOR = timedelta(hours=24)
DISABLE_AFTER = timedelta(hours=24)

SUBSCRIPTION_CHANGED = "employee-subscription-changed"
DOCUMENT_GENERATED = "new-employee-document-generated"
EVENT_TYPES = (SUBSCRIPTION_CHANGED, DOCUMENT_GENERATED)


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, body: bytes, t: int) -> str:
    """The ``X-Signing-Signature`` value for one attempt at unix time ``t``."""
    mac = hmac.new(secret.encode("utf-8"), f"{t}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def envelope(event_id: str, event_type: str, timestamp: int, payload: dict[str, Any]) -> bytes:
    """The published envelope, as the exact bytes sent (and signed)."""
    return json.dumps({"event": {"id": event_id, "type": event_type, "timestamp": timestamp}, "payload": payload},
                      separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def retry_delay(attempts: int, rand: Callable[[], float] = random.random) -> timedelta:
    """The wait after the ``attempts``-th failed attempt (1-based), with jitter."""
    base = min(MAX_RETRY, FIRST_RETRY * (2 ** min(attempts - 1, 20)))
    return base * (0.5 + rand() / 2)


def after_failure(attempts: int, created: datetime, now: datetime,
                  rand: Callable[[], float] = random.random) -> datetime | None:
    """When to try again after a failed attempt at ``now``; None: give up (24 h are over)."""
    if now - created >= RETRY_FOR:
        return None
    return now + retry_delay(attempts, rand)


def should_disable(failing_since: datetime | None, now: datetime) -> bool:
    """An endpoint that has failed every attempt since ``failing_since`` for a day is disabled."""
    return failing_since is not None and now - failing_since >= DISABLE_AFTER


def success(status: int | None) -> bool:
    return status is not None and 200 <= status < 300
