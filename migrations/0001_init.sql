-- 0001: the ledger as of bottlecap's first release.

-- reports is the ledger: one row per accepted usage report. id is the
-- idempotency key (the upstream response id); seq is the insertion order.
CREATE TABLE reports (
	seq         INTEGER PRIMARY KEY,
	id          TEXT    NOT NULL UNIQUE,
	bottle      TEXT    NOT NULL,
	agent       TEXT    NOT NULL DEFAULT '',
	provider    TEXT    NOT NULL DEFAULT '',
	host        TEXT    NOT NULL DEFAULT '',
	model       TEXT    NOT NULL DEFAULT '',
	input       INTEGER NOT NULL CHECK (input >= 0),
	cache_read  INTEGER NOT NULL CHECK (cache_read >= 0),
	cache_write INTEGER NOT NULL CHECK (cache_write >= 0),
	output      INTEGER NOT NULL CHECK (output >= 0),
	reasoning   INTEGER NOT NULL CHECK (reasoning >= 0),
	complete    INTEGER NOT NULL,
	ts          INTEGER NOT NULL, -- unix nanoseconds, 0 = unknown
	counted     INTEGER NOT NULL CHECK (counted >= 0)
);

-- Recent reports of a bottle, newest first, without scanning the ledger.
CREATE INDEX reports_bottle_seq ON reports (bottle, seq);

-- totals holds one aggregate per (bottle, agent, provider), updated in the
-- same transaction as the reports it counts, so reading a total never scans
-- the ledger.
CREATE TABLE totals (
	bottle      TEXT    NOT NULL,
	agent       TEXT    NOT NULL,
	provider    TEXT    NOT NULL,
	input       INTEGER NOT NULL DEFAULT 0,
	cache_read  INTEGER NOT NULL DEFAULT 0,
	cache_write INTEGER NOT NULL DEFAULT 0,
	output      INTEGER NOT NULL DEFAULT 0,
	reasoning   INTEGER NOT NULL DEFAULT 0,
	counted     INTEGER NOT NULL DEFAULT 0,
	reports     INTEGER NOT NULL DEFAULT 0,
	last_ts     INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (bottle, agent, provider)
) WITHOUT ROWID;

-- bottles are the sandboxes the daemon knows. Budgets, agent budgets and
-- containers are JSON.
CREATE TABLE bottles (
	slug          TEXT    NOT NULL PRIMARY KEY,
	agent         TEXT    NOT NULL DEFAULT '',
	name          TEXT    NOT NULL DEFAULT '',
	parent        TEXT    NOT NULL DEFAULT '',
	budget        TEXT    NOT NULL DEFAULT '{}',
	agent_budgets TEXT    NOT NULL DEFAULT '{}',
	policy        TEXT    NOT NULL DEFAULT '',
	containers    TEXT    NOT NULL DEFAULT '[]',
	state         TEXT    NOT NULL DEFAULT 'active',
	implicit      INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL
) WITHOUT ROWID;

-- budgets are runtime limits, one row per (scope, id, provider), so setting
-- one provider leaves the others as they are.
CREATE TABLE budgets (
	scope    TEXT    NOT NULL CHECK (scope IN ('global', 'bottle', 'agent')),
	id       TEXT    NOT NULL,
	provider TEXT    NOT NULL,
	tokens   INTEGER NOT NULL CHECK (tokens >= 0),
	PRIMARY KEY (scope, id, provider)
) WITHOUT ROWID;

-- warn_markers remember that a warn threshold was crossed, so the warn
-- event is recorded once per (scope, id, provider).
CREATE TABLE warn_markers (
	scope     TEXT    NOT NULL,
	id        TEXT    NOT NULL,
	provider  TEXT    NOT NULL,
	warned_at INTEGER NOT NULL,
	PRIMARY KEY (scope, id, provider)
) WITHOUT ROWID;

-- actions is the enforcement journal: written before an action runs.
CREATE TABLE actions (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	bottle     TEXT    NOT NULL,
	kind       TEXT    NOT NULL CHECK (kind IN ('cutoff', 'freeze', 'kill', 'restore')),
	reason     TEXT    NOT NULL DEFAULT '',
	operator   INTEGER NOT NULL DEFAULT 0,
	status     TEXT    NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
	attempts   INTEGER NOT NULL DEFAULT 0,
	last_error TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);

CREATE INDEX actions_status ON actions (status, id);

-- memos keep small values per (bottle, key), such as what a cutoff must
-- restore.
CREATE TABLE memos (
	bottle TEXT NOT NULL,
	key    TEXT NOT NULL,
	value  BLOB NOT NULL,
	PRIMARY KEY (bottle, key)
) WITHOUT ROWID;

-- audit is the append-only, hash-chained audit log. The triggers stop
-- accidental edits; the chain (checked by VerifyAudit) catches deliberate ones.
CREATE TABLE audit (
	seq       INTEGER PRIMARY KEY,
	ts        INTEGER NOT NULL,
	kind      TEXT    NOT NULL,
	bottle    TEXT    NOT NULL DEFAULT '',
	detail    TEXT    NOT NULL DEFAULT '',
	prev_hash TEXT    NOT NULL,
	hash      TEXT    NOT NULL
);

CREATE INDEX audit_bottle_seq ON audit (bottle, seq);

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
	SELECT RAISE(ABORT, 'audit log is append-only');
END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
	SELECT RAISE(ABORT, 'audit log is append-only');
END;
