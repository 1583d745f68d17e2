-- 0009: the fleet's shipping cursor (SPEC section 14): the seq of the last
-- report this host shipped to the fleet's Postgres. It is advanced only
-- after Postgres committed the reports up to it, so a crash in between
-- ships them again, which Postgres' (host, id) key makes a no-op.
--
-- instance is this ledger's id in the fleet, drawn on first use: a daemon
-- restarted on the same ledger takes its host name back at once, while a
-- daemon on another ledger claiming the same name is refused.
CREATE TABLE fleet_cursor (
	one      INTEGER NOT NULL PRIMARY KEY CHECK (one = 1),
	seq      INTEGER NOT NULL CHECK (seq >= 0),
	instance TEXT    NOT NULL DEFAULT ''
);
INSERT INTO fleet_cursor (one, seq) VALUES (1, 0);
