-- For sync: "my conversations' messages after gid X" straight from an index,
-- without walking everyone else's traffic since X.
CREATE INDEX history_messages_conv_gid ON history_messages (conv, gid);
