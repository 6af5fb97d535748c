"""Shared fixtures: keys made fresh for each test run, never stored in the repo."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent import keys
from agent.signer import TicketSpec

VECTORS = Path(__file__).parent / "vectors"
NOW = datetime(2026, 3, 2, 8, 30, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def issuer_key():
    return keys.generate_es256_key()


@pytest.fixture(scope="session")
def keystore(issuer_key) -> keys.KeyStore:
    store = keys.KeyStore()
    store.add_metadata(keys.participant_metadata(1234, [keys.public_jwk(issuer_key, "1234:k1")]))
    store.kdks["kdk-1"] = b"k" * 32
    return store


def ticket(ticket_id: str = "T1", **overrides) -> TicketSpec:
    fields = dict(ticket_id=ticket_id, valid_from=NOW - timedelta(hours=1), valid_until=NOW + timedelta(hours=1))
    fields.update(overrides)
    return TicketSpec(**fields)
