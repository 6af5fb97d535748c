-- The fleet: each device's latest state report (state: the report as JSON, the wire form) and
-- the columns the fleet view sorts and filters by.
CREATE TABLE devices (
    device TEXT PRIMARY KEY, last_contact TEXT NOT NULL, software_version TEXT,
    outbox_depth INTEGER NOT NULL, alarm_count INTEGER NOT NULL, state TEXT NOT NULL);
CREATE INDEX devices_last_contact ON devices(last_contact);
