-- The message rows and dedupe records of an applied envelope are written by one statement only
-- (db/functions/terragon_ingest_envelopes.sql), for a run it has just read and holds FOR UPDATE,
-- and no code deletes a thread_run row. Their foreign keys re-proved that once per row: an RI
-- trigger and a KEY SHARE probe of the locked run for each message and each dedupe record, 8 % of
-- a grouped envelope's PostgreSQL CPU (perf, batches of 4; issue 28). Dropped: the apply's one
-- writer is the guarantee, and the chaos campaign's reconcile checks every row against its run.
-- Never edit this file once landed: add a new migration instead (see CONTRIBUTING.md).
ALTER TABLE run_message DROP CONSTRAINT run_message_run_id_fkey;
ALTER TABLE daemon_event DROP CONSTRAINT daemon_event_run_id_fkey;
