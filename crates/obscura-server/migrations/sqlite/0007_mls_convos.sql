-- MLS conversations. The convo row holds the epoch (advanced by exactly one commit per epoch)
-- and the next seq of its log; commits and application messages share that log and are stored
-- once per conversation. Welcomes wait for each recipient device until it confirms them.
CREATE TABLE mls_convos (
    id               TEXT PRIMARY KEY NOT NULL,
    creator_did      TEXT NOT NULL,
    cipher_suite     INTEGER NOT NULL,
    epoch            INTEGER NOT NULL,
    next_seq         INTEGER NOT NULL,
    name             TEXT,
    description      TEXT,
    idempotency_key  TEXT,
    group_info       BLOB,
    group_info_epoch INTEGER,
    group_info_at    INTEGER,
    created_at       INTEGER NOT NULL,
    last_message_at  INTEGER
);

CREATE TABLE mls_members (
    convo_id  TEXT NOT NULL REFERENCES mls_convos (id) ON DELETE CASCADE,
    did       TEXT NOT NULL,
    is_admin  INTEGER NOT NULL,
    joined_at INTEGER NOT NULL,
    left_at   INTEGER,
    PRIMARY KEY (convo_id, did)
);
CREATE INDEX mls_members_by_did ON mls_members (did, convo_id);

CREATE TABLE mls_messages (
    convo_id   TEXT NOT NULL REFERENCES mls_convos (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    epoch      INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    msg_id     TEXT NOT NULL,
    sender_did TEXT NOT NULL,
    body       BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (convo_id, seq),
    UNIQUE (convo_id, msg_id)
);
CREATE INDEX mls_messages_by_expiry ON mls_messages (expires_at);

CREATE TABLE mls_welcomes (
    id         TEXT PRIMARY KEY NOT NULL,
    convo_id   TEXT NOT NULL REFERENCES mls_convos (id) ON DELETE CASCADE,
    epoch      INTEGER NOT NULL,
    body       BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX mls_welcomes_by_expiry ON mls_welcomes (expires_at);

CREATE TABLE mls_welcome_recipients (
    welcome_id TEXT NOT NULL REFERENCES mls_welcomes (id) ON DELETE CASCADE,
    did        TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    key_ref    BLOB NOT NULL,
    PRIMARY KEY (welcome_id, did, device_id)
);
CREATE INDEX mls_welcome_recipients_by_did ON mls_welcome_recipients (did);
