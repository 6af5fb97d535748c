-- The BoB Product, Token and Validation v3 APIs, and BoB's certificate login (issue 12).
-- A credential may be bound to a TLS client certificate subject (RFC 4514); several may share one.
ALTER TABLE credentials ADD COLUMN cert_subject TEXT;
-- Manifests signed by POST /manifest, read back by GET /manifest/{manifestId}.
CREATE TABLE manifests (
    manifest_id TEXT PRIMARY KEY, pid INTEGER NOT NULL, created_at TEXT NOT NULL,
    expire TEXT NOT NULL, body TEXT NOT NULL);
-- Tokens (phones, cards) this server knows: by RFC 7638 thumbprint, and by (issuer pid, serial).
CREATE TABLE tokens (
    token_id TEXT PRIMARY KEY, pid INTEGER NOT NULL, serial INTEGER, public_key TEXT NOT NULL,
    created_at TEXT NOT NULL);
CREATE INDEX tokens_serial ON tokens(pid, serial) WHERE serial IS NOT NULL;
-- The deny list by what it names: online validation and the Token API ask "is X denied now?".
CREATE INDEX deny_list_token ON deny_list(token_id, id) WHERE token_id IS NOT NULL;
CREATE INDEX deny_list_ticket ON deny_list(ticket_id, id) WHERE ticket_id IS NOT NULL;
CREATE INDEX deny_list_traveller ON deny_list(traveller_id, id) WHERE traveller_id IS NOT NULL;
-- Tickets bound to a token, for ID-based travel: the whitelist feed (ids only grow).
CREATE TABLE whitelist (
    id INTEGER PRIMARY KEY AUTOINCREMENT, token_id TEXT NOT NULL, ticket_id TEXT NOT NULL,
    mtb TEXT NOT NULL, valid_from TEXT NOT NULL, valid_until TEXT NOT NULL, priority INTEGER,
    created_at TEXT NOT NULL);
-- Events by MTB (issuer pid and signature) with their position: the fraud check looks them up.
ALTER TABLE events ADD COLUMN mtb_ref TEXT;
ALTER TABLE events ADD COLUMN lat REAL;
ALTER TABLE events ADD COLUMN long REAL;
UPDATE events SET mtb_ref = json_extract(body, '$.mtbReference.pid') || ':' ||
                            json_extract(body, '$.mtbReference.issuerSignature'),
                  lat = json_extract(body, '$.geo.lat'), long = json_extract(body, '$.geo.long')
    WHERE json_valid(body) AND json_type(body, '$.mtbReference.issuerSignature') = 'text'
      AND json_type(body, '$.mtbReference.pid') = 'integer';
CREATE INDEX events_mtb ON events(mtb_ref, event_time) WHERE mtb_ref IS NOT NULL;
-- Fraud-check answers given, one per (client, event) as the Validation API demands.
CREATE TABLE fraudcheck_answers (
    sub TEXT NOT NULL, event_id INTEGER NOT NULL, answered_at TEXT NOT NULL,
    PRIMARY KEY (sub, event_id));
