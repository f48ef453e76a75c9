-- Every applied envelope updates its run's row (seq, counters, last_event_at). The partial index
-- on last_event_at made each of those updates a non-HOT update: a new index entry in all four of
-- thread_run's btrees per envelope, and the dead entries of a busy run piling up in them until
-- vacuum (index probes on the snapshot and the run lock slow down over a long run). No query
-- reads it: the one that filters on last_event_at (finalize_stale_runs) compares
-- COALESCE(last_event_at, started_at), which this index cannot answer; it finds active runs through
-- thread_run_one_active. Dropped, the per-envelope update is HOT (no index write), given room on
-- the row's page: fillfactor 50 leaves half of each page for the newer versions of its rows.
-- Never edit this file once landed: add a new migration instead (see CONTRIBUTING.md).
DROP INDEX thread_run_active_last_event;
ALTER TABLE thread_run SET (fillfactor = 50);
