-- Signal prekeys. Keys are the 33-byte serialized form (0x05 prefix), signatures 64 bytes.
CREATE TABLE identity_keys (
    user_id         BLOB PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    identity_key    BLOB NOT NULL,
    registration_id INTEGER NOT NULL
);

CREATE TABLE signed_pre_keys (
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_id     INTEGER NOT NULL,
    public_key BLOB NOT NULL,
    signature  BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, key_id)
);

CREATE TABLE one_time_pre_keys (
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_id     INTEGER NOT NULL,
    public_key BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, key_id)
);
CREATE INDEX one_time_pre_keys_by_age ON one_time_pre_keys (user_id, created_at, key_id);
