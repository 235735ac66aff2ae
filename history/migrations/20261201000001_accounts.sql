-- roost accounts (issue 13): users with argon2id password hashes, groups, memberships.
--
-- Same rules as the history schema: portable types only (TEXT, BIGINT; flags are 0/1),
-- every table prefixed `accounts_`. No foreign keys (SQLite would need a pragma per
-- connection): the store deletes a user's or group's memberships itself.

CREATE TABLE accounts_users (
    id            TEXT NOT NULL PRIMARY KEY,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled      BIGINT NOT NULL DEFAULT 0,
    admin         BIGINT NOT NULL DEFAULT 0,
    created_ms    BIGINT NOT NULL
);

CREATE TABLE accounts_groups (
    id           TEXT NOT NULL PRIMARY KEY,
    display_name TEXT NOT NULL,
    created_ms   BIGINT NOT NULL
);

CREATE TABLE accounts_members (
    group_id TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX accounts_members_user ON accounts_members (user_id);
