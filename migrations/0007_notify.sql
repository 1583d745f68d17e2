-- 0007: the notification queue (SPEC section 13). One row per notice and
-- sink, written when the notice is handed over and deleted when the sink
-- has taken it, so that deliveries survive a restart. body is the notice
-- as JSON; attempts and last_error show a sink that keeps failing.
CREATE TABLE notify_queue (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	sink       TEXT    NOT NULL,
	kind       TEXT    NOT NULL,
	body       BLOB    NOT NULL,
	attempts   INTEGER NOT NULL DEFAULT 0,
	last_error TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL
);
CREATE INDEX notify_queue_sink ON notify_queue (sink, id);
