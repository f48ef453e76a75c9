-- The frozen daemonRunIdStrict that decided a quarantined envelope, on its row: Prometheus, the
-- archive and the dashboard all count `preview.strict_mismatch` from it (before, the archive and
-- the dashboard re-derived it by joining the active run, and missed a strict thread with no
-- active run). Rows written before this column: NULL (readers fall back to the join).
-- Never edit this file once landed: add a new migration instead (see CONTRIBUTING.md).
ALTER TABLE daemon_event_quarantine ADD COLUMN strict boolean;
