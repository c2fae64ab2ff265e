-- The per-user attachment quota sums an owner's live attachments at every upload.
CREATE INDEX attachments_by_owner ON attachments (owner_id, expires_at);
