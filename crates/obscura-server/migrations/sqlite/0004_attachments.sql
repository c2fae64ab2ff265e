-- Attachment records; the bytes live in the blob store under the id. No foreign key on the
-- owner: a record must outlive its uploader until its object has been deleted.
CREATE TABLE attachments (
    id         BLOB PRIMARY KEY NOT NULL,
    owner_id   BLOB NOT NULL,
    size_bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX attachments_by_expiry ON attachments (expires_at);
