-- name: ingest_envelope
-- The one correlation decision and the apply (db/functions/terragon_ingest_envelope.sql), by
-- named arguments. One round trip for an ordinary envelope; prepared.
SELECT outcome, legacy, applied_messages, last_seq, run_status, legacy_row_id::text,
       token_run_id, user_id, repo_full_name, repo_dir, sandbox_provider, codesandbox_id,
       active_run_id, run_id_strict AS strict, run_start_sha
FROM terragon_ingest_envelope(
    p_token_hash => %(token_hash)s::bytea,
    p_token_run_id => %(token_run_id)s::text,
    p_thread_id => %(thread_id)s::text,
    p_thread_chat_id => %(thread_chat_id)s::text,
    p_run_id => %(run_id)s::text,
    p_dedupe_id => %(dedupe_id)s::text,
    p_seq => %(seq)s::bigint,
    p_payload_version => %(payload_version)s::smallint,
    p_fields_valid => %(fields_valid)s::boolean,
    p_within_limits => %(within_limits)s::boolean,
    p_messages => %(messages)s::jsonb,
    p_trace_id => %(trace_id)s::text,
    p_terminal => %(terminal)s::boolean,
    p_failure => %(failure)s::boolean,
    p_end_sha => %(end_sha)s::text,
    p_inputs_ready => %(inputs_ready)s::boolean,
    p_diff_source => %(diff_source)s::text,
    p_diff_source_context => %(diff_source_context)s::text,
    p_legacy_row => %(legacy_row)s::jsonb,
    p_ui_outcome => %(ui_outcome)s::text,
    p_ui_blocking_reason => %(ui_blocking_reason)s::text)

-- name: ingest_envelopes
-- Group commit (db/functions/terragon_ingest_envelopes.sql): several envelopes through the one
-- decision, one subtransaction each, one statement and one commit; prepared.
SELECT ordinal, failed_sqlstate, outcome, legacy, applied_messages, last_seq, run_status,
       legacy_row_id::text, token_run_id, user_id, repo_full_name, repo_dir, sandbox_provider,
       codesandbox_id, active_run_id, run_id_strict AS strict, run_start_sha
FROM terragon_ingest_envelopes(%(batch)s::jsonb)

-- name: insert_quarantine
-- The row (terragon_insert_quarantine: the one insert of a quarantine row) and its
-- `quarantine.recorded` event in one statement: one implicit transaction, one round trip, no
-- BEGIN/COMMIT (issue 7: the quarantine path at >= 0.8 x the apply path). The id is made by the
-- caller (a random v4 uuid, like the column default) because the event carries it. Event
-- parameters are `ev_` + the preview_event columns (telemetry.repository.event_params).
WITH quarantined AS (
    SELECT terragon_insert_quarantine(%(row)s::jsonb) AS id
)
INSERT INTO preview_event (
    ts_server, schema_version, event_name, origin, trace_id, thread_id, thread_chat_id, run_id,
    codesandbox_id, sandbox_provider, preview_session_id, user_id, proxy_req_id, properties
)
SELECT %(ev_ts_server)s, %(ev_schema_version)s, %(ev_event_name)s, %(ev_origin)s, %(ev_trace_id)s,
       %(ev_thread_id)s, %(ev_thread_chat_id)s, %(ev_run_id)s, %(ev_codesandbox_id)s,
       %(ev_sandbox_provider)s, %(ev_preview_session_id)s, %(ev_user_id)s, %(ev_proxy_req_id)s,
       %(ev_properties)s
FROM quarantined

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
SELECT id::text, thread_id, thread_chat_id, run_id AS run_id_or_null, active_run_id, reason,
       payload_version, payload_hash, payload_size, payload_prefix_2k, payload_object_key,
       repo_full_name, user_id, sandbox_provider, created_at, event_id, seq, trace_id,
       offload_skipped, payload_inline, replayed_at, replay_status, token_run_id, strict
FROM daemon_event_quarantine WHERE id = %(id)s::uuid

-- name: mark_replayed
UPDATE daemon_event_quarantine SET replayed_at = now(), replay_status = %(replay_status)s
WHERE id = %(id)s::uuid

-- name: fetch_ui_validation
SELECT latest_run_id, outcome AS ui_validation_outcome, blocking_reason
FROM thread_ui_validation
WHERE thread_id = %(thread_id)s AND thread_chat_id = %(thread_chat_id)s

-- name: fetch_active_preview_sessions
SELECT preview_session_id FROM preview_session
WHERE thread_id = %(thread_id)s AND thread_chat_id = %(thread_chat_id)s
  AND revoked_at IS NULL AND expires_at > now()

-- name: try_sweep_lock
SELECT pg_try_advisory_xact_lock(%(key)s)

-- name: existing_object_keys
SELECT payload_object_key FROM daemon_event_quarantine
WHERE payload_object_key = ANY(%(keys)s)
