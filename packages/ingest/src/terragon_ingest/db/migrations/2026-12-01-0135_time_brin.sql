-- The rollup reads one closed hour at a time (`created_at` / `ts_server` in [lo, hi)); without an
-- index on the time column each read scanned the whole day's partition, so an hour cost as much
-- as its day (issue 16: an hour in a 5 M-row day vs a 100 k-row day must stay <= 2x).
-- BRIN, not btree: rows arrive in time order, so per-range min/max bounds find an hour in a few
-- block ranges, and the write path pays almost nothing (a btree would add an index insert and its
-- WAL to every quarantined envelope and every event). `autosummarize` summarises each range as
-- soon as it fills (autovacuum work item), so only the newest range is ever read unsummarised.
-- Built once per partition (a seq scan; a partitioned index cannot be built CONCURRENTLY).
-- Never edit this file once landed: add a new migration instead (see CONTRIBUTING.md).
CREATE INDEX daemon_event_quarantine_created_brin ON daemon_event_quarantine
    USING brin (created_at) WITH (pages_per_range = 32, autosummarize = on);
CREATE INDEX preview_event_ts_brin ON preview_event
    USING brin (ts_server) WITH (pages_per_range = 32, autosummarize = on);
