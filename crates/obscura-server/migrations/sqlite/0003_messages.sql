-- Inboxes. seq orders a recipient's messages and is never reused (users.message_seq).
CREATE TABLE messages (
    id           BLOB PRIMARY KEY NOT NULL,
    recipient_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    sender_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    message_type INTEGER NOT NULL,
    content      BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    UNIQUE (recipient_id, seq)
);
CREATE INDEX messages_by_expiry ON messages (expires_at);
