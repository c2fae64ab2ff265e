-- Readiness writes a row here and deletes it again in one transaction: a database that answers
-- reads but cannot take writes (a full disk, a read-only standby after a failover) is not ready.
CREATE TABLE write_probe (
    filler BYTEA NOT NULL
);
