"""Durable before green: with full durability the write-ahead log is fsynced after a scan's
events are committed and before anyone sees the decision; a failed COMMIT leaves no open
transaction behind.

A SIGKILL (tests/e2e/test_power_cut.py) cannot tell a missing fsync from a present one (the
OS page cache survives it), so these tests count the fsyncs themselves: ``os.fdatasync`` is
wrapped, and at each call a second connection reads what is committed.
"""
from __future__ import annotations

import os
import sqlite3
from datetime import timedelta

import pytest

from mtb import keys, signer
from mtb.timeutil import utcnow
from agent.cache import Cache
from agent.engine import Engine
from agent.runtime import Agent
from mtb.scan_context import Context, Validator
from hardware import SimulatedFeedback, SimulatedReader

from .conftest import ticket


def live(issuer_key, ticket_id: str) -> bytes:
    now = utcnow()
    return signer.mint(issuer_key, pid=1234, kid="1234:k1",
                       tickets=[ticket(ticket_id, valid_from=now - timedelta(hours=1), valid_until=now + timedelta(hours=1))])


class WalSyncs:
    """Each fsync of the cache's write-ahead log, with the outbox as another connection sees it then."""

    def __init__(self, path, monkeypatch) -> None:
        self.path = path
        self.seen: list[int] = []  # committed outbox rows at each fsync of the log
        self.log: list[tuple[str, int]] = []  # ("fsync", rows) and ("show", n) in the order they happened
        real = os.fdatasync

        def counting(fd: int) -> None:
            real(fd)
            if os.fstat(fd).st_ino == os.stat(f"{self.path}-wal").st_ino:
                with sqlite3.connect(self.path) as reader:
                    rows = reader.execute("SELECT count(*) FROM outbox").fetchone()[0]
                self.seen.append(rows)
                self.log.append(("fsync", rows))

        monkeypatch.setattr(os, "fdatasync", counting)


@pytest.fixture()
def full_cache(tmp_path, issuer_key):
    cache = Cache(tmp_path / "device.db", durability="full")
    cache.import_metadata(keys.participant_metadata(1234, [keys.public_jwk(issuer_key, "1234:k1")]))
    yield cache
    cache.close()


def test_full_durability_fsyncs_each_scan_after_its_commit(full_cache, issuer_key, monkeypatch):
    syncs = WalSyncs(full_cache.path, monkeypatch)
    engine = Engine(full_cache)
    try:
        for n in range(1, 4):
            decision = engine.validate_sync(live(issuer_key, f"T{n}"), Context(time=utcnow(), validator=Validator("g")))
            assert decision.event_result == 0
            assert syncs.seen == list(range(1, n + 1))  # one fsync per scan, and it covered the scan's event
    finally:
        engine.close()


def test_normal_durability_does_not_fsync(cache, issuer_key, monkeypatch):
    syncs = WalSyncs(cache.path, monkeypatch)
    engine = Engine(cache)
    try:
        assert engine.validate_sync(live(issuer_key, "T1"), Context(time=utcnow(), validator=Validator("g"))).accepted
    finally:
        engine.close()
    assert syncs.seen == [] and cache.outbox_count() == 1


async def test_the_running_agent_shows_nothing_before_its_fsync(full_cache, issuer_key, monkeypatch):
    syncs = WalSyncs(full_cache.path, monkeypatch)

    class Witness(SimulatedFeedback):
        async def show(self, colour, text, lines=None):
            syncs.log.append(("show", sum(1 for kind, _ in syncs.log if kind == "show") + 1))
            await super().show(colour, text, lines)

    scans = [live(issuer_key, f"T{i}") for i in range(12)]
    engine = Engine(full_cache)
    agent = Agent(engine=engine, reader=SimulatedReader(scans, finish=True), feedback=Witness(),
                  validator=Validator("gate-1"))
    try:
        await agent.run(install_signal_handlers=False)
    finally:
        engine.close()
    assert [s.colour for s in agent.feedback.shown] == ["green"] * 12
    durable = 0
    for kind, n in syncs.log:
        if kind == "fsync":
            durable = max(durable, n)
        else:
            assert n <= durable, f"decision {n} shown with only {durable} event(s) fsynced: {syncs.log}"
    assert 1 <= len(syncs.seen) <= 12  # a queue of scans shares an fsync (group commit)


async def test_a_failing_fsync_shows_no_green(full_cache, issuer_key, monkeypatch, caplog):
    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    engine = Engine(full_cache)
    agent = Agent(engine=engine, reader=SimulatedReader(), feedback=SimulatedFeedback(), validator=Validator("g"))
    monkeypatch.setattr(os, "fdatasync", broken)
    try:
        assert await agent.handle_scan(live(issuer_key, "T1")) is None
    finally:
        engine.close()
    assert (agent.feedback.last.colour, agent.feedback.last.text) == ("red", "Please try again")
    assert "Input/output error" in caplog.text


def test_a_failed_commit_is_rolled_back_and_the_cache_goes_on(cache):
    """A deferred foreign key is checked at COMMIT: the COMMIT fails and leaves the transaction
    open, which would wedge every later write on this connection unless it is rolled back."""
    cache.conn.execute("PRAGMA foreign_keys=ON")
    cache.conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    cache.conn.execute("CREATE TABLE child (parent_id INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        with cache.transaction():
            cache.conn.execute("INSERT INTO child (parent_id) VALUES (42)")
            cache._set_meta("written", "in the failed transaction")
    assert not cache.conn.in_transaction
    assert cache.get_meta("written") is None  # rolled back, not half-kept
    cache.set_meta("after", "works")
    assert cache.get_meta("after") == "works"
    assert cache.conn.execute("SELECT count(*) FROM child").fetchone()[0] == 0


def test_an_exception_inside_rolls_back(cache):
    with pytest.raises(RuntimeError):
        with cache.transaction():
            cache._set_meta("half", "done")
            raise RuntimeError("boom")
    assert cache.get_meta("half") is None and not cache.conn.in_transaction
