-- Readiness writes a row here and deletes it again in one transaction: a database that answers
-- reads but cannot take writes (a full disk, a size cap, a read-only file) is not ready.
CREATE TABLE write_probe (
    filler BLOB NOT NULL
);
