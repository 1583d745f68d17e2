-- 0001: hosts, the reports they ship, and each host's shipped totals.

-- fleet_hosts has one row per host name. A daemon claims its name at start
-- with a random instance id and keeps last_seen fresh while it runs; a
-- second daemon with another instance is refused while last_seen is recent.
-- shipped_seq is the last local ledger seq the host shipped, lag_ms the age
-- of its oldest unshipped report when it last shipped (0: caught up).
CREATE TABLE fleet_hosts (
	host        text        PRIMARY KEY,
	instance    text        NOT NULL,
	started_at  timestamptz NOT NULL,
	last_seen   timestamptz NOT NULL,
	shipped_seq bigint      NOT NULL DEFAULT 0 CHECK (shipped_seq >= 0),
	lag_ms      bigint      NOT NULL DEFAULT 0 CHECK (lag_ms >= 0)
);

-- fleet_reports holds every report each host committed to its own ledger,
-- keyed by (host, id): shipping one again changes nothing. seq is the
-- report's place in its host's ledger; upstream the API host it went to.
CREATE TABLE fleet_reports (
	host        text    NOT NULL,
	id          text    NOT NULL,
	seq         bigint  NOT NULL,
	bottle      text    NOT NULL,
	agent       text    NOT NULL DEFAULT '',
	provider    text    NOT NULL DEFAULT '',
	upstream    text    NOT NULL DEFAULT '',
	model       text    NOT NULL DEFAULT '',
	input       bigint  NOT NULL CHECK (input >= 0),
	cache_read  bigint  NOT NULL CHECK (cache_read >= 0),
	cache_write bigint  NOT NULL CHECK (cache_write >= 0),
	output      bigint  NOT NULL CHECK (output >= 0),
	reasoning   bigint  NOT NULL CHECK (reasoning >= 0),
	complete    boolean NOT NULL,
	ts          bigint  NOT NULL, -- unix nanoseconds, 0 = unknown (as in the local ledger)
	counted     bigint  NOT NULL CHECK (counted >= 0),
	PRIMARY KEY (host, id)
);

-- A window's usage per provider (and per host) without reading the rows.
CREATE INDEX fleet_reports_window ON fleet_reports (provider, ts, host) INCLUDE (counted);

-- fleet_host_usage is each host's lifetime shipped counted tokens per
-- provider, raised in the transaction that inserts the reports by exactly
-- what was inserted, so a replayed batch raises nothing.
CREATE TABLE fleet_host_usage (
	host     text   NOT NULL,
	provider text   NOT NULL,
	shipped  bigint NOT NULL DEFAULT 0 CHECK (shipped >= 0),
	PRIMARY KEY (host, provider)
);
