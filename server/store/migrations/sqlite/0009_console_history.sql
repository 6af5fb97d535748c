-- What the operator console (server/console/) shows that nothing kept before.
-- A device's page lists its latest events.
CREATE INDEX events_device ON events(sub, id);
-- A device's state over time (the devices table keeps only its latest report): a row when
-- the software or the number of alarms changes, else at most one every 5 minutes; a week is kept.
CREATE TABLE device_history (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, at TEXT NOT NULL, software_version TEXT,
    outbox_depth INTEGER NOT NULL, alarm_count INTEGER NOT NULL, state TEXT NOT NULL);
CREATE INDEX device_history_device ON device_history(device, at);
-- When each device last fetched the deny list, by its own report (the report's time less the
-- age it gives for its deny list; NULL: it gives none): how many devices still have to fetch
-- an entry is a count of devices that fetched before the entry was added.
ALTER TABLE devices ADD COLUMN deny_fetched_at TEXT;
CREATE INDEX devices_deny_fetched ON devices(deny_fetched_at);
CREATE INDEX deny_list_created ON deny_list(created_at);
-- HR syncs the B2B API refused (a bad roster: 422), with their errors; the applied ones are
-- b2b_hr_syncs. The integration keeps only the latest errors.
CREATE TABLE b2b_hr_sync_failures (
    id INTEGER PRIMARY KEY, integration_id INTEGER NOT NULL REFERENCES b2b_hr_integrations(id),
    received_at TEXT NOT NULL, errors TEXT NOT NULL);
CREATE INDEX b2b_hr_sync_failures_integration ON b2b_hr_sync_failures(integration_id, received_at);
CREATE INDEX b2b_hr_syncs_received ON b2b_hr_syncs(integration_id, received_at);
-- An endpoint's delivery log, newest first.
CREATE INDEX b2b_deliveries_endpoint ON b2b_deliveries(endpoint_id, id);
