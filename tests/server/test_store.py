"""The store on each backend (a real SQLite file, a real PostgreSQL database): numbered
migrations, a transaction that survives a failed COMMIT, de-duplication by the unique
constraint, deny ids in commit order, and the two backends' schemas kept alike."""
from __future__ import annotations

import random
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from server.store import DenyEntry, MigrationError, NewEvent, Store, open_database, open_store
from server.store.database import migrations, statements

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def target(tmp_path, database_for):
    """Where this test's store lives: a SQLite file, or a fresh PostgreSQL database."""
    return database_for().get("database") or str(tmp_path / "s.db")


def event(lid: str | None, ticket: str = "T1") -> NewEvent:
    return NewEvent(local_event_id=lid, ticket_id=ticket, event_time=NOW, event_result=0, body={"localEventId": lid})


def test_a_new_database_gets_every_migration_once(target):
    store = open_store(target)
    newest = migrations(store.db.dialect)[-1].version
    assert store.schema_version == newest
    rows = store.db.query("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in rows] == list(range(1, newest + 1))
    store.close()
    again = open_store(target)  # reopening applies nothing twice
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


def test_a_database_newer_than_the_code_is_refused(target):
    store = open_store(target)
    with store.db.transaction() as tx:
        tx.execute("INSERT INTO schema_migrations(version, name, applied_at) VALUES (999, 'future', 'x')")
    store.close()
    with pytest.raises(MigrationError, match="newer"):
        open_store(target)


def test_statements_split_a_migration_file():
    sql = "-- a comment\nCREATE TABLE a (x TEXT);\nCREATE INDEX b ON a(x); -- trailing\n\nALTER TABLE a ADD y TEXT;\n"
    assert list(statements(sql)) == ["CREATE TABLE a (x TEXT)", "CREATE INDEX b ON a(x)", "ALTER TABLE a ADD y TEXT"]


def test_a_failed_commit_rolls_back_and_the_connection_keeps_working(target):
    db = open_database(target, pool_size=1)  # one connection: the one that saw the failure is reused
    with db.transaction() as tx:
        tx.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        tx.execute("CREATE TABLE child (pid INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(Exception) as failed:
        with db.transaction() as tx:  # the deferred foreign key fails at COMMIT, not at the INSERT
            tx.execute("INSERT INTO child(pid) VALUES (42)")
    assert any(cls.__name__ in ("IntegrityError", "ForeignKeyViolation") for cls in type(failed.value).__mro__)
    with db.transaction() as tx:  # a wedged connection would fail here: "cannot start a transaction within"
        tx.execute("INSERT INTO parent(id) VALUES (1)")
        tx.execute("INSERT INTO child(pid) VALUES (1)")
    assert [r["pid"] for r in db.query("SELECT pid FROM child")] == [1]
    db.close()


def test_two_processes_storing_the_same_batch_store_it_once(target):
    first, second = open_store(target), open_store(target)
    batch = [event("a"), event("b"), event("a"), event(None)]
    one = first.ingest_events("val1", 1234, "validation", NOW, batch)
    two = second.ingest_events("val1", 1234, "validation", NOW, batch)
    assert [dup for _, dup in one] == [False, False, True, False]
    assert [dup for _, dup in two] == [True, True, True, False]  # a NULL localEventId is never a duplicate
    assert [i for i, _ in one[:3]] == [i for i, _ in two[:3]]
    assert first.count_events() == 4
    first.close()
    second.close()


def test_ingest_reports_the_winner_when_another_store_inserted_between_lookup_and_insert(target):
    store, other = open_store(target), open_store(target)
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


def test_deny_ids_grow_and_a_reader_after_an_id_sees_every_later_entry(target):
    store = open_store(target)
    ids = [store.add_deny(DenyEntry(expire=NOW + timedelta(days=1), ticket_id=f"T{i}")) for i in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert [e.ticket_id for e in store.deny_since(ids[1], 10)] == ["T2", "T3", "T4"]
    store.close()


def test_deny_entries_that_commit_late_are_never_skipped_by_a_reader_by_id(target):
    """Writers that sleep between taking an id and committing, on separate connections, and a
    reader that pages by high-water mark meanwhile: it sees every id, in order, none skipped."""
    writers = [open_store(target) for _ in range(3)]
    reader = open_store(target)
    stop = threading.Event()
    seen: list[int] = []

    def write(store: Store, n: int) -> None:
        for i in range(n):
            with store.db.transaction() as tx:
                Store.add_deny_in(tx, DenyEntry(expire=NOW, ticket_id=f"T{i}"))
                time.sleep(random.uniform(0, 0.01))  # committed later than it was numbered

    def read() -> None:
        high = 0
        while not stop.is_set() or reader.deny_since(high, 1):
            page = reader.deny_since(high, 1000)
            seen.extend(e.entry_id for e in page)
            high = page[-1].entry_id if page else high

    threads = [threading.Thread(target=write, args=(store, 40)) for store in writers]
    reading = threading.Thread(target=read)
    reading.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    stop.set()
    reading.join(60)
    committed = [e.entry_id for e in reader.deny_since(0, 10_000)]
    assert len(committed) == 120 and seen == committed  # every id, each once, in order
    for store in (*writers, reader):
        store.close()


def test_every_sqlite_migration_has_a_postgresql_twin():
    assert ([(m.version, m.name) for m in migrations("postgresql")]
            == [(m.version, m.name) for m in migrations("sqlite")])


def test_both_backends_migrate_to_the_same_tables_and_columns(tmp_path, postgres_server):
    lite, pg = open_store(tmp_path / "s.db"), open_store(postgres_server.create())
    tables = [r["name"] for r in lite.db.query("SELECT name FROM sqlite_master WHERE type = 'table' "
                                                "AND name NOT LIKE 'sqlite_%'")]
    in_sqlite = {t: sorted(r["name"] for r in lite.db.query(f'PRAGMA table_info("{t}")')) for t in tables}
    in_postgres: dict[str, list[str]] = {}
    for row in pg.db.query("SELECT table_name, column_name FROM information_schema.columns "
                           "WHERE table_schema = current_schema() ORDER BY table_name, column_name"):
        in_postgres.setdefault(row["table_name"], []).append(row["column_name"])
    assert in_postgres == in_sqlite
    lite.close()
    pg.close()


def test_placeholders_become_psycopg_style_outside_literals():
    from server.store.postgres import pg_sql
    assert pg_sql("SELECT a FROM t WHERE b = ? AND c LIKE 'x%?' AND d = ?") == \
        "SELECT a FROM t WHERE b = %s AND c LIKE 'x%%?' AND d = %s"
    assert pg_sql("SELECT 'it''s ?' AS q, 5 % 2 AS r WHERE x = ?") == "SELECT 'it''s ?' AS q, 5 %% 2 AS r WHERE x = %s"


def test_uses_that_commit_out_of_order_are_never_skipped_by_a_reader_below_the_horizon(target):
    """Ingests share the uses lock and commit in any order; a reader that pages only up to
    the horizon (read under the lock held exclusively) still sees every id, in order."""
    from server.store.core import USES_LOCK
    writers = [open_store(target) for _ in range(3)]
    reader = open_store(target)
    stop = threading.Event()
    seen: list[int] = []
    since = NOW - timedelta(days=1)

    def write(store: Store, n: int) -> None:
        for i in range(n):
            with store.db.transaction() as tx:
                tx.share(USES_LOCK)
                tx.execute("INSERT INTO uses(ticket_id, event_id, used_at, entry) VALUES (?, ?, ?, ?)",
                           (f"T{i}", i, "2026-11-27T08:00:00.000Z", '{"ticketId":"T"}'))
                time.sleep(random.uniform(0, 0.01))  # committed later than it was numbered

    def read() -> None:
        high = 0
        while True:
            finished = stop.is_set()
            page = reader.uses_since(high, reader.uses_horizon(), since, 1000)
            seen.extend(use_id for use_id, _ in page)
            high = page[-1][0] if page else high
            if finished and not page:
                return

    threads = [threading.Thread(target=write, args=(store, 40)) for store in writers]
    reading = threading.Thread(target=read)
    reading.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    stop.set()
    reading.join(60)
    committed = [use_id for use_id, _ in reader.uses_since(0, 10 ** 12, since, 10_000)]
    assert len(committed) == 120 and seen == committed
    for store in (*writers, reader):
        store.close()


def test_a_long_write_transaction_holds_no_read_of_what_is_committed(target):
    """One store, one writer holding its transaction open (a big HR sync, say): reads on other
    threads answer meanwhile with what is committed, and see the writer's rows once it commits."""
    store = open_store(target)
    store.add_deny(DenyEntry(expire=NOW + timedelta(days=1), ticket_id="BEFORE"))
    writing, release = threading.Event(), threading.Event()

    def write() -> None:
        with store.db.transaction() as tx:
            Store.add_deny_in(tx, DenyEntry(expire=NOW + timedelta(days=1), ticket_id="DURING"))
            writing.set()
            assert release.wait(30)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert writing.wait(30)
        answers: list[list[str]] = []
        readers = [threading.Thread(target=lambda: answers.append([e.ticket_id for e in store.deny_since(0, 10)]))
                   for _ in range(3)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(10)
        assert answers == [["BEFORE"]] * 3  # all answered while the write was open, none saw it
    finally:
        release.set()
        writer.join(30)
    assert [e.ticket_id for e in store.deny_since(0, 10)] == ["BEFORE", "DURING"]
    store.close()


def test_a_closed_store_reads_nothing_on_any_thread(target):
    """After close, a read fails on a thread that had read before and on one that never had."""
    store = open_store(target)
    store.add_deny(DenyEntry(expire=NOW + timedelta(days=1), ticket_id="T1"))
    assert len(store.deny_since(0, 10)) == 1  # this thread has read
    store.close()
    errors: list[Exception] = []

    def read() -> None:
        try:
            store.deny_since(0, 10)
        except Exception as exc:  # noqa: BLE001 - whatever the backend raises for a closed database
            errors.append(exc)

    for _ in range(2):  # this thread, then a new one
        read()
        thread = threading.Thread(target=read)
        thread.start()
        thread.join(10)
    assert len(errors) == 4
