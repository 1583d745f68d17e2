-- 0006: windowed limits (SPEC section 12).

-- A runtime limit may now be several limits for one provider, each with a
-- window. limits holds them as written (5000000/day+50000000/month); ''
-- means tokens alone is the limit, for the bottle's life, as rows written
-- before windows say. tokens keeps the lifetime limit's amount, or 0.
ALTER TABLE budgets ADD COLUMN limits TEXT NOT NULL DEFAULT '';

-- A warning is recorded once per window: mark names the window and the
-- period it warned in ('' for a lifetime limit, as every older row), and
-- until is when that period ended and the mark may go (0: never).
CREATE TABLE warn_markers_v5 (
	scope     TEXT    NOT NULL,
	id        TEXT    NOT NULL,
	provider  TEXT    NOT NULL,
	mark      TEXT    NOT NULL DEFAULT '',
	warned_at INTEGER NOT NULL,
	until     INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (scope, id, provider, mark)
) WITHOUT ROWID;
INSERT INTO warn_markers_v5 (scope, id, provider, warned_at)
	SELECT scope, id, provider, warned_at FROM warn_markers;
DROP TABLE warn_markers;
ALTER TABLE warn_markers_v5 RENAME TO warn_markers;
