-- Attachment records; the bytes live in the blob store under the id. No foreign key on the
-- owner: a record must outlive its uploader until its object has been deleted.
CREATE TABLE attachments (
    id         UUID PRIMARY KEY,
    owner_id   UUID NOT NULL,
    size_bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX attachments_by_expiry ON attachments (expires_at);
