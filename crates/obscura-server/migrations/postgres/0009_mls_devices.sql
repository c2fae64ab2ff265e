-- Devices of MLS users. A device is one MLS client, known by its signature key; its id (a
-- server-made UUID) is the device part of its identity `did#id`. A device registered with a
-- client-side uuid that is already known replaces the older device of that uuid.
CREATE TABLE mls_devices (
    id            TEXT PRIMARY KEY NOT NULL,
    did           TEXT NOT NULL,
    name          TEXT NOT NULL,
    device_uuid   TEXT,
    signature_key BYTEA NOT NULL,
    registered_at BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    UNIQUE (did, signature_key)
);
CREATE INDEX mls_devices_by_did ON mls_devices (did, last_seen_at);
CREATE UNIQUE INDEX mls_devices_by_uuid ON mls_devices (did, device_uuid) WHERE device_uuid IS NOT NULL;

-- A new device waiting to be added to a conversation its user is in: announced to the
-- members, claimed by one of them for a while, completed by the Welcome that adds it.
CREATE TABLE mls_device_additions (
    id              TEXT PRIMARY KEY NOT NULL,
    convo_id        TEXT NOT NULL REFERENCES mls_convos (id) ON DELETE CASCADE,
    did             TEXT NOT NULL,
    device_id       TEXT NOT NULL REFERENCES mls_devices (id) ON DELETE CASCADE,
    status          TEXT NOT NULL,
    claimed_by      TEXT,
    claimed_until   BIGINT,
    created_at      BIGINT NOT NULL,
    completed_at    BIGINT,
    completed_epoch BIGINT,
    expires_at      BIGINT NOT NULL,
    UNIQUE (convo_id, device_id)
);
CREATE INDEX mls_device_additions_by_device ON mls_device_additions (device_id);
CREATE INDEX mls_device_additions_by_expiry ON mls_device_additions (expires_at);

-- Where to wake an MLS device (for push; no content is ever kept). The device id is the
-- client's: a registered device's id, or its own id before it registers.
CREATE TABLE mls_device_push_tokens (
    did         TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    token       TEXT NOT NULL,
    platform    TEXT NOT NULL,
    device_name TEXT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (did, device_id)
);
