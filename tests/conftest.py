"""Shared fixtures: keys made fresh for each test run, never stored in the repo."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from collections.abc import Iterator
from pathlib import Path

import pytest

from mtb import keys
from agent.cache import Cache
from agent.engine import Engine
from mtb.signer import TicketSpec

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


@pytest.fixture()
def cache(tmp_path, issuer_key) -> Iterator[Cache]:
    """A device cache on a real SQLite file, trusting the session's issuer key and KDK ``kdk-1``."""
    cache = Cache(tmp_path / "device.db", durability="normal")
    cache.import_metadata(keys.participant_metadata(1234, [keys.public_jwk(issuer_key, "1234:k1")]))
    cache.add_kdk("kdk-1", b"k" * 32)
    yield cache
    cache.close()


@pytest.fixture()
def engine(cache) -> Iterator[Engine]:
    engine = Engine(cache)
    yield engine
    engine.close()


def ticket(ticket_id: str = "T1", **overrides) -> TicketSpec:
    fields = dict(ticket_id=ticket_id, valid_from=NOW - timedelta(hours=1), valid_until=NOW + timedelta(hours=1))
    fields.update(overrides)
    return TicketSpec(**fields)
