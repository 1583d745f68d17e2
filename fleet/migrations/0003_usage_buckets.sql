-- 0003: each host's shipped usage per provider in minute and hour buckets,
-- so that a window's usage is read from a few hundred buckets rather than
-- summed over every report of the window (a month: millions of rows, read
-- every second by every host and inside the lease lock).

-- minute is the report's ts in whole unix minutes, rounded down (ts 0,
-- unknown, falls in minute 0, before every window's start, as the report
-- itself does); hour likewise in whole unix hours. A bucket's tokens are
-- the counted tokens of the host's reports in it, saturating as every sum.
-- The key leads with (provider, time) so that a window of all hosts is one
-- index range; host is in it so that each host writes only rows of its own
-- (its shipper is the only writer of its buckets: no row is contended).
CREATE TABLE fleet_usage_minutes (
	provider text   NOT NULL,
	minute   bigint NOT NULL,
	host     text   NOT NULL,
	tokens   bigint NOT NULL CHECK (tokens >= 0),
	PRIMARY KEY (provider, minute, host)
);

CREATE TABLE fleet_usage_hours (
	provider text   NOT NULL,
	hour     bigint NOT NULL,
	host     text   NOT NULL,
	tokens   bigint NOT NULL CHECK (tokens >= 0),
	PRIMARY KEY (provider, hour, host)
);

-- fleet_floor_div is a / b rounded toward minus infinity (b > 0), so a
-- time before 1970 falls in the bucket before, as budget's windows have it.
CREATE FUNCTION fleet_floor_div(a bigint, b bigint) RETURNS bigint
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	AS $$ SELECT CASE WHEN a >= 0 THEN a / b ELSE -((-(a + 1)) / b) - 1 END $$;

-- The buckets are raised by the database, in the statement that inserts
-- the reports, from the rows it actually inserted (a transition table holds
-- only those: a report shipped again, skipped by ON CONFLICT DO NOTHING,
-- adds nothing). A trigger rather than the shipper's statement, so that a
-- daemon of an older version, which ships without knowing the buckets,
-- keeps them right during a rolling upgrade.
CREATE FUNCTION fleet_bucket_reports() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path FROM CURRENT
	AS $$
BEGIN
	INSERT INTO fleet_usage_minutes AS b (provider, minute, host, tokens)
		SELECT provider, fleet_floor_div(ts, 60000000000), host, LEAST(sum(counted), 9223372036854775807)::bigint
		FROM inserted GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
		ON CONFLICT (provider, minute, host) DO UPDATE
		SET tokens = LEAST(b.tokens::numeric + excluded.tokens, 9223372036854775807)::bigint;
	INSERT INTO fleet_usage_hours AS b (provider, hour, host, tokens)
		SELECT provider, fleet_floor_div(ts, 3600000000000), host, LEAST(sum(counted), 9223372036854775807)::bigint
		FROM inserted GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
		ON CONFLICT (provider, hour, host) DO UPDATE
		SET tokens = LEAST(b.tokens::numeric + excluded.tokens, 9223372036854775807)::bigint;
	RETURN NULL;
END
$$;

-- No report may be inserted between the backfill's read and the trigger:
-- shipments wait for this migration's commit, then raise the buckets.
LOCK TABLE fleet_reports IN SHARE ROW EXCLUSIVE MODE;

CREATE TRIGGER fleet_reports_bucket AFTER INSERT ON fleet_reports
	REFERENCING NEW TABLE AS inserted
	FOR EACH STATEMENT EXECUTE FUNCTION fleet_bucket_reports();

-- The reports shipped before this migration.
INSERT INTO fleet_usage_minutes (provider, minute, host, tokens)
	SELECT provider, fleet_floor_div(ts, 60000000000), host, LEAST(sum(counted), 9223372036854775807)::bigint
	FROM fleet_reports GROUP BY 1, 2, 3;
INSERT INTO fleet_usage_hours (provider, hour, host, tokens)
	SELECT provider, fleet_floor_div(minute, 60), host, LEAST(sum(tokens), 9223372036854775807)::bigint
	FROM fleet_usage_minutes GROUP BY 1, 2, 3;
