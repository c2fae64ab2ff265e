-- MLS KeyPackages. Keyed by their MLS KeyPackageRef, which is how Welcomes name the packages
-- they consume. A reservation (reserved_by until reserved_until) hands a package to one
-- requester; a consumed package stays, for the owner's history, until its lifetime ends.
CREATE TABLE mls_key_packages (
    key_ref        BYTEA PRIMARY KEY,
    owner_did      TEXT NOT NULL,
    device_id      TEXT NOT NULL,
    sha256         TEXT NOT NULL UNIQUE,
    cipher_suite   INTEGER NOT NULL,
    body           BYTEA NOT NULL,
    last_resort    BOOLEAN NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    reserved_by    TEXT,
    reserved_until BIGINT,
    consumed_at    BIGINT,
    consumed_in    TEXT
);
CREATE INDEX mls_key_packages_by_owner ON mls_key_packages (owner_did, device_id, created_at);
CREATE INDEX mls_key_packages_by_expiry ON mls_key_packages (expires_at);
