-- One name for one concept: the deny list ("blacklist" stays only on the BoB wire format).
-- The identity's sequence moves with the table.
ALTER TABLE blacklist RENAME TO deny_list;
-- Admins list every ticket newest first (no travellerId).
CREATE INDEX tickets_issued ON tickets(issued_at);
