-- The schema of the first release (IF NOT EXISTS: a database made before numbered migrations
-- already has these tables and adopts version 1 as it is).
CREATE TABLE IF NOT EXISTS credentials (
    entity_id TEXT PRIMARY KEY, role TEXT NOT NULL, pid INTEGER NOT NULL,
    password_hash TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bundles (
    bundle_id TEXT PRIMARY KEY, pid INTEGER NOT NULL, manifest_id TEXT NOT NULL,
    settlement_id TEXT NOT NULL, parent_id TEXT, request_id TEXT, mtb TEXT NOT NULL,
    created_at TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS bundles_manifest ON bundles(manifest_id) WHERE parent_id IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS bundles_request ON bundles(pid, request_id)
    WHERE parent_id IS NULL AND request_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS bundle_tickets (
    bundle_id TEXT NOT NULL, position INTEGER NOT NULL, ticket_id TEXT NOT NULL,
    PRIMARY KEY (bundle_id, position));
CREATE TABLE IF NOT EXISTS tickets (
    ticket_id TEXT PRIMARY KEY, pid INTEGER NOT NULL, bundle_id TEXT NOT NULL,
    manifest_id TEXT NOT NULL, settlement_id TEXT NOT NULL, issued_at TEXT NOT NULL,
    valid_from TEXT NOT NULL, valid_until TEXT NOT NULL, fare TEXT NOT NULL, state TEXT NOT NULL,
    payload TEXT NOT NULL, mtb TEXT NOT NULL, product_id TEXT, category TEXT, traveller_id TEXT,
    traveller_name TEXT, request_id TEXT, booking_id TEXT, refunded_amount TEXT,
    recovered_amount TEXT, recovered_from TEXT, replaced_by TEXT, updated_at TEXT);
CREATE INDEX IF NOT EXISTS tickets_traveller ON tickets(traveller_id, issued_at);
CREATE INDEX IF NOT EXISTS tickets_request ON tickets(request_id) WHERE request_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS ticket_log (
    id INTEGER PRIMARY KEY, ticket_id TEXT NOT NULL, at TEXT NOT NULL, action TEXT NOT NULL,
    from_state TEXT, to_state TEXT NOT NULL, actor TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ticket_log_ticket ON ticket_log(ticket_id, id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, sub TEXT NOT NULL, local_event_id TEXT, ticket_id TEXT NOT NULL,
    kind TEXT NOT NULL, event_time TEXT NOT NULL, event_result INTEGER, poster_pid INTEGER,
    received_at TEXT NOT NULL, body TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS events_dedupe ON events(sub, local_event_id);
CREATE INDEX IF NOT EXISTS events_ticket ON events(ticket_id, id);
CREATE TABLE IF NOT EXISTS blacklist (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ticket_id TEXT, traveller_id TEXT, token_id TEXT,
    expire TEXT NOT NULL, reason TEXT, created_at TEXT NOT NULL);
