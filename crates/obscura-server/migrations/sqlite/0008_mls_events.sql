-- The MLS event stream: one row per event, in the order the transactions that wrote them
-- committed (the id is the subscription cursor). Message events point into mls_messages and
-- Welcome events into mls_welcomes instead of copying them. A row without a recipient is for
-- the conversation's members; one with a recipient is for that user only.
CREATE TABLE mls_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    convo_id      TEXT NOT NULL REFERENCES mls_convos (id) ON DELETE CASCADE,
    recipient_did TEXT,
    kind          TEXT NOT NULL,
    msg_seq       INTEGER,
    welcome_id    TEXT,
    detail        TEXT,
    created_at    INTEGER NOT NULL
);
CREATE INDEX mls_events_by_convo ON mls_events (convo_id, id);
CREATE INDEX mls_events_by_recipient ON mls_events (recipient_did, id);
CREATE INDEX mls_events_by_age ON mls_events (created_at);

-- The highest event id ever deleted for age: a cursor below it may have missed events.
CREATE TABLE mls_event_horizon (
    singleton      INTEGER PRIMARY KEY CHECK (singleton = 1),
    purged_through INTEGER NOT NULL
);
INSERT INTO mls_event_horizon (singleton, purged_through) VALUES (1, 0);

-- A member sees the conversation's events with ids above this one: not those from before it
-- joined (including the commit that added it).
ALTER TABLE mls_members ADD COLUMN events_after INTEGER NOT NULL DEFAULT 0;
