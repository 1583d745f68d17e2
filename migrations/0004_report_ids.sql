-- 0004: report ids move out of a UNIQUE index on reports into report_ids,
-- which the daemon fills in bulk. A unique index on random upstream ids
-- costs one random B-tree page per report in every commit, and so grew
-- slower as the ledger grew; the store now checks the ids of reports newer
-- than report_ids_merged.seq in memory, and merges them into report_ids,
-- sorted, many thousands at a time.
CREATE TABLE reports_v4 (
	seq         INTEGER PRIMARY KEY,
	id          TEXT    NOT NULL,
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
INSERT INTO reports_v4 SELECT seq, id, bottle, agent, provider, host, model, input, cache_read,
	cache_write, output, reasoning, complete, ts, counted FROM reports;
DROP TABLE reports;
ALTER TABLE reports_v4 RENAME TO reports;
CREATE INDEX reports_bottle_seq ON reports (bottle, seq);
CREATE INDEX reports_ts ON reports (ts, bottle, agent, provider, counted);

-- report_ids holds the id of every report up to report_ids_merged.seq.
CREATE TABLE report_ids (
	id TEXT NOT NULL PRIMARY KEY
) WITHOUT ROWID;
INSERT INTO report_ids SELECT id FROM reports ORDER BY id;

CREATE TABLE report_ids_merged (
	one INTEGER NOT NULL PRIMARY KEY CHECK (one = 1),
	seq INTEGER NOT NULL
);
INSERT INTO report_ids_merged VALUES (1, (SELECT COALESCE(MAX(seq), 0) FROM reports));
