"""The store on a real SQLite file: numbered migrations, a transaction that survives a failed
COMMIT, de-duplication by the unique constraint, deny ids in commit order."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from server.store import DenyEntry, MigrationError, NewEvent, SqliteDatabase, Store, open_store
from server.store.database import migrations, statements

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc)


def event(lid: str | None, ticket: str = "T1") -> NewEvent:
    return NewEvent(local_event_id=lid, ticket_id=ticket, event_time=NOW, event_result=0, body={"localEventId": lid})


def test_a_new_database_gets_every_migration_once(tmp_path):
    store = open_store(tmp_path / "s.db")
    newest = migrations("sqlite")[-1].version
    assert store.schema_version == newest
    rows = store.db.query("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in rows] == list(range(1, newest + 1))
    store.close()
    again = open_store(tmp_path / "s.db")  # reopening applies nothing twice
    assert len(again.db.query("SELECT version FROM schema_migrations")) == newest
    again.close()


def test_a_database_from_before_numbered_migrations_is_adopted_and_keeps_its_deny_ids(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(migrations("sqlite")[0].sql + "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);")
    db.execute("INSERT INTO blacklist(ticket_id, expire, created_at) VALUES ('OLD', '2030-01-01T00:00:00.000Z', "
               "'2026-01-01T00:00:00.000Z')")
    db.execute("DELETE FROM blacklist")  # AUTOINCREMENT: id 1 is never handed out again
    db.commit()
    db.close()
    store = open_store(path)
    assert store.add_deny(DenyEntry(expire=NOW, ticket_id="NEW")) == 2
    store.close()


def test_a_database_newer_than_the_code_is_refused(tmp_path):
    store = open_store(tmp_path / "s.db")
    with store.db.transaction() as tx:
        tx.execute("INSERT INTO schema_migrations(version, name, applied_at) VALUES (999, 'future', 'x')")
    store.close()
    with pytest.raises(MigrationError, match="newer"):
        open_store(tmp_path / "s.db")


def test_statements_split_a_migration_file():
    sql = "-- a comment\nCREATE TABLE a (x TEXT);\nCREATE INDEX b ON a(x); -- trailing\n\nALTER TABLE a ADD y TEXT;\n"
    assert list(statements(sql)) == ["CREATE TABLE a (x TEXT)", "CREATE INDEX b ON a(x)", "ALTER TABLE a ADD y TEXT"]


def test_a_failed_commit_rolls_back_and_the_connection_keeps_working(tmp_path):
    db = SqliteDatabase(tmp_path / "s.db")
    with db.transaction() as tx:
        tx.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        tx.execute("CREATE TABLE child (pid INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(sqlite3.IntegrityError):
        with db.transaction() as tx:  # the deferred foreign key fails at COMMIT, not at the INSERT
            tx.execute("INSERT INTO child(pid) VALUES (42)")
    with db.transaction() as tx:  # a wedged connection would fail here: "cannot start a transaction within"
        tx.execute("INSERT INTO parent(id) VALUES (1)")
        tx.execute("INSERT INTO child(pid) VALUES (1)")
    assert [r["pid"] for r in db.query("SELECT pid FROM child")] == [1]
    db.close()


def test_two_processes_storing_the_same_batch_store_it_once(tmp_path):
    first, second = open_store(tmp_path / "s.db"), open_store(tmp_path / "s.db")
    batch = [event("a"), event("b"), event("a"), event(None)]
    one = first.ingest_events("val1", 1234, "validation", NOW, batch)
    two = second.ingest_events("val1", 1234, "validation", NOW, batch)
    assert [dup for _, dup in one] == [False, False, True, False]
    assert [dup for _, dup in two] == [True, True, True, False]  # a NULL localEventId is never a duplicate
    assert [i for i, _ in one[:3]] == [i for i, _ in two[:3]]
    assert first.count_events() == 4
    first.close()
    second.close()


def test_ingest_reports_the_winner_when_another_store_inserted_between_lookup_and_insert(tmp_path):
    store, other = open_store(tmp_path / "s.db"), open_store(tmp_path / "s.db")
    real_known = Store._known_events
    calls = []

    def racing(tx, sub, lids):  # the first look-up sees nothing; then the other process stores "x"
        found = real_known(tx, sub, lids)
        if not calls:
            calls.append(1)
            return {}
        return found

    other.ingest_events("val1", 1234, "validation", NOW, [event("x")])
    Store._known_events = staticmethod(racing)  # type: ignore[method-assign]
    try:
        [(event_id, duplicate)] = store.ingest_events("val1", 1234, "validation", NOW, [event("x")])
    finally:
        Store._known_events = staticmethod(real_known)  # type: ignore[method-assign]
    assert duplicate and event_id == other.get_event(event_id).event_id and store.count_events() == 1
    store.close()
    other.close()


def test_deny_ids_grow_and_a_reader_after_an_id_sees_every_later_entry(tmp_path):
    store = open_store(tmp_path / "s.db")
    ids = [store.add_deny(DenyEntry(expire=NOW + timedelta(days=1), ticket_id=f"T{i}")) for i in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert [e.ticket_id for e in store.deny_since(ids[1], 10)] == ["T2", "T3", "T4"]
    store.close()
