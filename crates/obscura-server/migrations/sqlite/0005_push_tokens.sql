-- One push token per user (the newest registration wins).
CREATE TABLE push_tokens (
    user_id    BLOB PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
