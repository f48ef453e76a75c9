-- The run a quarantined envelope's token was minted for (CONTRACT §4: a token names its run).
-- Never edit this file once landed: add a new migration instead (see CONTRIBUTING.md).
--
-- A replay decides a stored envelope exactly as its delivery was decided, and a runId-less
-- envelope's decision depends on the token's run: under a superseded run's token it is that old
-- run's daemon (`mismatch`), never applied to the run that is active at replay time. Rows written
-- before this column existed have NULL (replay treats a runId-less `mismatch` row as a zombie).
ALTER TABLE daemon_event_quarantine ADD COLUMN token_run_id text;
