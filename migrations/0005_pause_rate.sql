-- 0005: the pause action and the rate guard (SPEC section 12). The actions
-- journal takes kind 'pause' (SQLite cannot change a CHECK in place, so
-- the table is rebuilt, ids and all); a bottle keeps its own rate guards
-- (JSON, tokens per minute per provider) and whether the rate guard set
-- its state (the guard lifts only what it did itself).
CREATE TABLE actions_v5 (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	bottle     TEXT    NOT NULL,
	kind       TEXT    NOT NULL CHECK (kind IN ('cutoff', 'pause', 'freeze', 'kill', 'restore')),
	reason     TEXT    NOT NULL DEFAULT '',
	operator   INTEGER NOT NULL DEFAULT 0,
	status     TEXT    NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
	attempts   INTEGER NOT NULL DEFAULT 0,
	last_error TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
INSERT INTO actions_v5 SELECT id, bottle, kind, reason, operator, status, attempts, last_error,
	created_at, updated_at FROM actions;
-- Ids are never reused: the new table's sequence goes on from the old one's.
DELETE FROM sqlite_sequence WHERE name = 'actions_v5';
INSERT INTO sqlite_sequence (name, seq) SELECT 'actions_v5', seq FROM sqlite_sequence WHERE name = 'actions';
DROP TABLE actions;
ALTER TABLE actions_v5 RENAME TO actions;
CREATE INDEX actions_status ON actions (status, id);

ALTER TABLE bottles ADD COLUMN rate TEXT NOT NULL DEFAULT '{}';
ALTER TABLE bottles ADD COLUMN by_rate_guard INTEGER NOT NULL DEFAULT 0;
