-- The uses feed: accepted validations, as devices read them for passback and travel-speed
-- checks across devices. entry is the wire form (JSON) without its id; rows older than the
-- longest horizon are pruned.
CREATE TABLE uses (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ticket_id TEXT NOT NULL, event_id INTEGER NOT NULL,
    used_at TEXT NOT NULL, entry TEXT NOT NULL);
CREATE INDEX uses_used_at ON uses(used_at);
