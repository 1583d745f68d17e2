-- 0009: the fleet's shipping cursor (SPEC section 14): the seq of the last
-- report this host shipped to the fleet's Postgres. It is advanced only
-- after Postgres committed the reports up to it, so a crash in between
-- ships them again, which Postgres' (host, id) key makes a no-op.
CREATE TABLE fleet_cursor (
	one INTEGER NOT NULL PRIMARY KEY CHECK (one = 1),
	seq INTEGER NOT NULL CHECK (seq >= 0)
);
INSERT INTO fleet_cursor VALUES (1, 0);
