-- name: ingest_envelope
-- The one correlation decision and the apply (db/functions/terragon_ingest_envelope.sql), by
-- named arguments. The SELECT list and the arguments are filled in from repository's `Decision`
-- and `DecisionInput` (one field per column, one per parameter). One round trip for an ordinary
-- envelope; prepared.
SELECT {decision}
FROM terragon_ingest_envelope(
    {arguments})

-- name: ingest_envelopes
-- Group commit (db/functions/terragon_ingest_envelopes.sql): several envelopes through the one
-- decision, one statement and one commit; `isolated`: one subtransaction each; prepared.
SELECT ordinal, failed_sqlstate, {decision}
FROM terragon_ingest_envelopes(%(batch)s::jsonb, %(isolated)s::boolean)

-- name: insert_quarantines
-- Quarantine decisions recorded (db/functions/terragon_record_quarantines.sql: each row, its
-- `quarantine.recorded` event, a strict mismatch's denials): one set-based statement, one implicit
-- transaction, one round trip, no BEGIN/COMMIT, all or nothing; prepared. One item alone is a
-- batch of one; several are group commit.
SELECT ordinal, denied FROM terragon_record_quarantines(%(batch)s::jsonb)

-- name: insert_quarantine_once
-- One item whose grouped statement failed as a whole: if that failure was a connection lost
-- after the commit, its row is already there under its id (made by the caller) and is not written
-- twice. The row was made moments ago: only the newest partitions are probed.
SELECT ordinal, denied FROM terragon_record_quarantines(
    CASE WHEN EXISTS (
        SELECT 1 FROM daemon_event_quarantine
        WHERE id = %(id)s::uuid AND created_at > now() - interval '1 hour'
    ) THEN '[]'::jsonb ELSE %(batch)s::jsonb END)

-- name: list_quarantine
SELECT id::text, thread_id, thread_chat_id, run_id AS run_id_or_null, active_run_id, reason,
       payload_version, payload_hash, payload_size, payload_prefix_2k, payload_object_key,
       repo_full_name, user_id, sandbox_provider, created_at
FROM daemon_event_quarantine
WHERE (%(thread_id)s::text IS NULL OR thread_id = %(thread_id)s)
  AND (%(run_id)s::text IS NULL OR run_id = %(run_id)s)
  AND (%(reason)s::text IS NULL OR reason = %(reason)s)
  AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)
ORDER BY created_at DESC, id
LIMIT %(limit)s

-- name: fetch_quarantine
-- Every column, read by name into core's QuarantineRecord.
SELECT * FROM daemon_event_quarantine WHERE id = %(id)s::uuid

-- name: mark_replayed
UPDATE daemon_event_quarantine SET replayed_at = now(), replay_status = %(replay_status)s
WHERE id = %(id)s::uuid

-- name: fetch_ui_validation
SELECT latest_run_id, outcome AS ui_validation_outcome, blocking_reason
FROM thread_ui_validation
WHERE thread_id = %(thread_id)s AND thread_chat_id = %(thread_chat_id)s

-- name: try_sweep_lock
SELECT pg_try_advisory_xact_lock(%(key)s)

-- name: existing_object_keys
SELECT payload_object_key FROM daemon_event_quarantine
WHERE payload_object_key = ANY(%(keys)s)
