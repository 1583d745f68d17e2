-- 0003: usage over a recent time window (the dashboard's burn rates and
-- sparklines) without scanning the ledger. The index covers every column the
-- windowed query reads, so it never touches the reports table itself.
CREATE INDEX reports_ts ON reports (ts, bottle, agent, provider, counted);
