-- The JobTicket B2B API (server/b2b/): companies and their API keys, HR integrations and their
-- syncs, employees with their subscription, monthly tickets and documents, scheduled
-- revocations, and the webhook queue with its delivery log. Dates are operator-local
-- YYYY-MM-DD text, instants ISO 8601 UTC text (as everywhere in the store), JSON as text.
CREATE TABLE b2b_companies (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, api_enabled INTEGER NOT NULL,
    product_id TEXT NOT NULL, category TEXT, zones TEXT NOT NULL, modes TEXT NOT NULL, fare TEXT NOT NULL,
    plan_type TEXT NOT NULL, plan_contribution REAL, created_at TEXT NOT NULL);
CREATE TABLE b2b_api_keys (
    key_id TEXT PRIMARY KEY, company_id INTEGER NOT NULL REFERENCES b2b_companies(id),
    secret_hash TEXT NOT NULL, permissions TEXT NOT NULL, enabled INTEGER NOT NULL, name TEXT,
    created_at TEXT NOT NULL);
CREATE INDEX b2b_api_keys_company ON b2b_api_keys(company_id);
CREATE TABLE b2b_hr_integrations (
    id INTEGER PRIMARY KEY, company_id INTEGER NOT NULL REFERENCES b2b_companies(id), name TEXT NOT NULL,
    status TEXT NOT NULL, last_sync_id TEXT, last_synced_at TEXT, added INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0, offboarded INTEGER NOT NULL DEFAULT 0, errors TEXT,
    created_at TEXT NOT NULL);
CREATE INDEX b2b_hr_integrations_company ON b2b_hr_integrations(company_id, id);
CREATE TABLE b2b_hr_syncs (
    integration_id INTEGER NOT NULL REFERENCES b2b_hr_integrations(id), sync_id TEXT NOT NULL,
    body_hash TEXT NOT NULL, received_at TEXT NOT NULL, added INTEGER NOT NULL, updated INTEGER NOT NULL,
    offboarded INTEGER NOT NULL, PRIMARY KEY (integration_id, sync_id));
CREATE TABLE b2b_employees (
    id INTEGER PRIMARY KEY, company_id INTEGER NOT NULL REFERENCES b2b_companies(id),
    integration_id INTEGER NOT NULL REFERENCES b2b_hr_integrations(id), hr_id TEXT NOT NULL,
    first_name TEXT NOT NULL, last_name TEXT NOT NULL, email TEXT NOT NULL, profile_image TEXT,
    date_of_birth TEXT, plan_type TEXT NOT NULL, plan_contribution REAL,
    contract_signing_status TEXT NOT NULL,
    start_at TEXT NOT NULL, termination_date TEXT, offboarded_on TEXT, absences TEXT NOT NULL,
    status TEXT NOT NULL, paused_at TEXT, reactivated_at TEXT, cancelled_at TEXT, next_ticket_at TEXT,
    last_sync_id TEXT, last_synced TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE UNIQUE INDEX b2b_employees_hr ON b2b_employees(integration_id, hr_id);
CREATE INDEX b2b_employees_company ON b2b_employees(company_id, id);
CREATE INDEX b2b_employees_email ON b2b_employees(company_id, email);
CREATE TABLE b2b_tickets (
    id INTEGER PRIMARY KEY, employee_id INTEGER NOT NULL REFERENCES b2b_employees(id), month TEXT NOT NULL,
    ticket_id TEXT NOT NULL, valid_from TEXT NOT NULL, valid_until TEXT NOT NULL, issued_at TEXT NOT NULL,
    revoked_at TEXT);
-- One live ticket per employee and month: the roll-over's idempotence is this constraint's job.
CREATE UNIQUE INDEX b2b_tickets_live ON b2b_tickets(employee_id, month) WHERE revoked_at IS NULL;
CREATE INDEX b2b_tickets_month ON b2b_tickets(month, employee_id);
CREATE TABLE b2b_documents (
    id INTEGER PRIMARY KEY, company_id INTEGER NOT NULL REFERENCES b2b_companies(id),
    employee_id INTEGER NOT NULL REFERENCES b2b_employees(id), ticket_id TEXT NOT NULL, month TEXT NOT NULL,
    name TEXT NOT NULL, file_type TEXT NOT NULL, downloadable INTEGER NOT NULL, content BLOB,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE INDEX b2b_documents_employee ON b2b_documents(employee_id, id);
CREATE INDEX b2b_documents_company ON b2b_documents(company_id, id);
CREATE TABLE b2b_revocations (
    ticket_id TEXT PRIMARY KEY, employee_id INTEGER NOT NULL, due_at TEXT NOT NULL, reason TEXT NOT NULL,
    done_at TEXT);
CREATE INDEX b2b_revocations_due ON b2b_revocations(done_at, due_at);
CREATE TABLE b2b_webhook_endpoints (
    id INTEGER PRIMARY KEY, company_id INTEGER NOT NULL REFERENCES b2b_companies(id), url TEXT NOT NULL,
    event_types TEXT NOT NULL, secret TEXT NOT NULL, enabled INTEGER NOT NULL, failing_since TEXT,
    disabled_at TEXT, disabled_reason TEXT, created_at TEXT NOT NULL);
CREATE TABLE b2b_webhook_events (
    id INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, company_id INTEGER NOT NULL, type TEXT NOT NULL,
    employee_id INTEGER, created_at TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE b2b_deliveries (
    id INTEGER PRIMARY KEY, endpoint_id INTEGER NOT NULL REFERENCES b2b_webhook_endpoints(id),
    event_row INTEGER NOT NULL REFERENCES b2b_webhook_events(id), order_key TEXT NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at TEXT, last_status_code INTEGER,
    last_error TEXT, created_at TEXT NOT NULL, finished_at TEXT);
CREATE INDEX b2b_deliveries_due ON b2b_deliveries(status, next_attempt_at);
CREATE INDEX b2b_deliveries_order ON b2b_deliveries(endpoint_id, order_key, id);
CREATE TABLE b2b_delivery_attempts (
    id INTEGER PRIMARY KEY, delivery_id INTEGER NOT NULL REFERENCES b2b_deliveries(id), at TEXT NOT NULL,
    status_code INTEGER, error TEXT, duration_ms INTEGER NOT NULL);
CREATE INDEX b2b_delivery_attempts_delivery ON b2b_delivery_attempts(delivery_id, id);
