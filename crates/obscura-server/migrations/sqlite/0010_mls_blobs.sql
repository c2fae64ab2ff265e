-- Encrypted files of MLS conversations (uploadBlob). The object lives in the blob store under
-- `id`; the record names its owner, size and content id, and expires with --ttl-days. A blob
-- is readable by its owner and by the current members of each conversation it was shared in.
CREATE TABLE mls_blobs (
    id         TEXT PRIMARY KEY NOT NULL,
    cid        TEXT NOT NULL,
    owner_did  TEXT NOT NULL,
    size       INTEGER NOT NULL,
    mime_type  TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX mls_blobs_by_cid ON mls_blobs (cid);
CREATE INDEX mls_blobs_by_owner ON mls_blobs (owner_did, expires_at);
CREATE INDEX mls_blobs_by_expiry ON mls_blobs (expires_at);

CREATE TABLE mls_blob_shares (
    blob_id   TEXT NOT NULL REFERENCES mls_blobs (id) ON DELETE CASCADE,
    convo_id  TEXT NOT NULL REFERENCES mls_convos (id) ON DELETE CASCADE,
    shared_at INTEGER NOT NULL,
    PRIMARY KEY (blob_id, convo_id)
);
