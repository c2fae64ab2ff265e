-- Signal prekeys. Keys are the 33-byte serialized form (0x05 prefix), signatures 64 bytes.
CREATE TABLE identity_keys (
    user_id         UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    identity_key    BYTEA NOT NULL,
    registration_id INTEGER NOT NULL
);

CREATE TABLE signed_pre_keys (
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_id     INTEGER NOT NULL,
    public_key BYTEA NOT NULL,
    signature  BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, key_id)
);

CREATE TABLE one_time_pre_keys (
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_id     INTEGER NOT NULL,
    public_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, key_id)
);
CREATE INDEX one_time_pre_keys_by_age ON one_time_pre_keys (user_id, created_at, key_id);
