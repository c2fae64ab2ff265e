-- One push token per user (the newest registration wins).
CREATE TABLE push_tokens (
    user_id    UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    token      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
