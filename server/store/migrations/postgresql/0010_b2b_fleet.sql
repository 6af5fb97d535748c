-- The B2B API's work queues, shared by every server process on the database (server/b2b/), as
-- on SQLite: a process claims rows (claimed_by: who, claimed_until: the lease, ISO 8601 UTC
-- text) in a short transaction (SELECT ... FOR UPDATE SKIP LOCKED), does the work outside it,
-- and clears the claim when done; the lease of a process that died runs out.
ALTER TABLE b2b_deliveries ADD COLUMN claimed_by TEXT;
ALTER TABLE b2b_deliveries ADD COLUMN claimed_until TEXT COLLATE "C";
ALTER TABLE b2b_revocations ADD COLUMN claimed_by TEXT;
ALTER TABLE b2b_revocations ADD COLUMN claimed_until TEXT COLLATE "C";
-- The document of each ticket the roll-over issued, rendered after the roll-over's transaction.
CREATE TABLE b2b_render_jobs (
    ticket_id TEXT COLLATE "C" PRIMARY KEY, company_id BIGINT NOT NULL REFERENCES b2b_companies(id),
    employee_id BIGINT NOT NULL REFERENCES b2b_employees(id), created_at TEXT COLLATE "C" NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, claimed_by TEXT, claimed_until TEXT COLLATE "C");
CREATE INDEX b2b_render_jobs_created ON b2b_render_jobs(created_at, ticket_id);
-- One document per ticket: a render finished twice (a lease ran out meanwhile) is stored once.
CREATE UNIQUE INDEX b2b_documents_ticket ON b2b_documents(ticket_id);
-- Revocations and documents find a monthly ticket by its Ticket API id.
CREATE UNIQUE INDEX b2b_tickets_ticket ON b2b_tickets(ticket_id);
