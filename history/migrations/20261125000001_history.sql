-- roost chat history, version 1.
--
-- One schema for PostgreSQL and SQLite: portable types only (TEXT, BIGINT),
-- no dialect-specific DDL. Every table is prefixed `history_` so the store can
-- share a database with other software.

-- The head of the global log: the last allocated `gid` and the last `ts`.
-- Every write batch updates this single row first, inside its transaction.
-- On PostgreSQL the row lock serialises batch commits, so gids are allocated in
-- commit order (see `store_batch` in src/store.rs for why sync relies on that).
CREATE TABLE history_head (
    id       BIGINT NOT NULL PRIMARY KEY,
    last_gid BIGINT NOT NULL,
    last_ts  BIGINT NOT NULL
);
INSERT INTO history_head (id, last_gid, last_ts) VALUES (1, 0, 0);

-- One row per conversation that ever had a message. `last_seq` is the
-- per-conversation seq counter: it only grows, even when retention deletes
-- messages, so seqs are never reused. `min_seq`: every message with a lower seq
-- has been deleted by count retention (lets retention skip trimmed conversations).
CREATE TABLE history_conversations (
    conv     TEXT NOT NULL PRIMARY KEY,
    dm_a     TEXT,
    dm_b     TEXT,
    last_seq BIGINT NOT NULL,
    last_gid BIGINT NOT NULL,
    last_ts  BIGINT NOT NULL,
    min_seq  BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX history_conversations_dm_a ON history_conversations (dm_a);
CREATE INDEX history_conversations_dm_b ON history_conversations (dm_b);

-- The messages. `gid` is the global sync position, `seq` the gapless position in
-- the conversation, `(sender, msg_id)` the idempotency key from the payload's `id`.
CREATE TABLE history_messages (
    gid     BIGINT NOT NULL PRIMARY KEY,
    conv    TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    sender  TEXT NOT NULL,
    msg_id  TEXT NOT NULL,
    ts      BIGINT NOT NULL,
    payload TEXT NOT NULL,
    CONSTRAINT history_messages_conv_seq UNIQUE (conv, seq),
    CONSTRAINT history_messages_sender_id UNIQUE (sender, msg_id)
);

-- Users who have sent to or read a conversation, with their read cursor.
CREATE TABLE history_participants (
    conv     TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    read_seq BIGINT NOT NULL,
    PRIMARY KEY (conv, user_id)
);
