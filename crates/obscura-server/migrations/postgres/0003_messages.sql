-- Inboxes. seq orders a recipient's messages and is never reused (users.message_seq).
CREATE TABLE messages (
    id           UUID PRIMARY KEY,
    recipient_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    sender_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    message_type INTEGER NOT NULL,
    content      BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    UNIQUE (recipient_id, seq)
);
CREATE INDEX messages_by_expiry ON messages (expires_at);
