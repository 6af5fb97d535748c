-- The operator console (server/console/).
-- Why a ticket changed state, as the operator typed it, and the deny-list entry the change
-- added: the console's deny list shows who did it and why (the ticket_log row keeps both once).
ALTER TABLE ticket_log ADD COLUMN reason TEXT;
ALTER TABLE ticket_log ADD COLUMN deny_id BIGINT;
CREATE INDEX ticket_log_deny ON ticket_log(deny_id) WHERE deny_id IS NOT NULL;
-- Signed-in operators: in the database, so that every server process knows every session.
-- Only a hash of the cookie's token is kept; the CSRF token goes in the session's forms.
CREATE TABLE console_sessions (
    token_hash TEXT COLLATE "C" PRIMARY KEY, entity_id TEXT COLLATE "C" NOT NULL, csrf TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL, seen_at TEXT COLLATE "C" NOT NULL, expires_at TEXT COLLATE "C" NOT NULL);
CREATE INDEX console_sessions_expiry ON console_sessions(expires_at);
-- Activity by minute over the last hours reads events by time (covering: no event body read).
CREATE INDEX events_time ON events(event_time, kind, event_result);
