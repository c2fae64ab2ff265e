-- Accounts and refresh tokens. Times are Unix milliseconds (BIGINT), as in the SQLite schema.
CREATE TABLE users (
    id            UUID PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    -- Last sequence number handed to a message for this user (see messages.seq).
    message_seq   BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);

-- Refresh tokens are stored only as hashes. A rotated token is kept (rotated_at set) until it
-- expires, so that presenting it again is recognised as reuse.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    rotated_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
