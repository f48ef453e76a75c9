-- name: fetch_envelope_context
-- The thread's dimensions, the (thread, chat) pointer and the frozen snapshot that decides the
-- runId rules: the active run's, or (no active run) the snapshot of the run the token was minted for.
SELECT t.user_id, t.repo_full_name, t.repo_dir,
       COALESCE(a.sandbox_provider, t.sandbox_provider) AS sandbox_provider,
       COALESCE(a.codesandbox_id, t.codesandbox_id) AS codesandbox_id,
       c.active_run_id,
       COALESCE(a.frozen_daemon_run_id_strict, tr.frozen_daemon_run_id_strict, false) AS strict,
       a.run_start_sha
FROM thread t
LEFT JOIN thread_run_context c
       ON c.thread_id = t.thread_id AND c.thread_chat_id = %(thread_chat_id)s
LEFT JOIN thread_run a ON a.run_id = c.active_run_id
LEFT JOIN thread_run tr ON tr.run_id = %(token_run_id)s
WHERE t.thread_id = %(thread_id)s

-- name: ingest_envelope
-- The happy path in one round trip: token, thread binding, context and (when the runId rule
-- passes trivially and the batch is not terminal) the apply (migration 2026-11-26-1930).
SELECT outcome, applied_messages, last_seq, run_status, token_run_id, user_id, repo_full_name,
       repo_dir, sandbox_provider, codesandbox_id, active_run_id, run_id_strict AS strict,
       run_start_sha
FROM terragon_ingest_envelope(
    %(token_hash)s, %(thread_id)s, %(thread_chat_id)s, %(run_id)s, %(dedupe_id)s, %(seq)s,
    %(payload_version)s::smallint, %(fields_valid)s, %(messages)s::jsonb, %(trace_id)s,
    %(terminal)s, %(failure)s, %(end_sha)s)

-- name: apply_envelope
SELECT outcome, applied_messages, last_seq, run_status, legacy_row_id
FROM terragon_apply_envelope(
    %(run_id)s, %(dedupe_id)s, %(seq)s, %(payload_version)s::smallint, %(fields_valid)s,
    %(messages)s::jsonb, %(trace_id)s, %(terminal)s, %(failure)s, %(end_sha)s, %(diff_source)s,
    %(diff_source_context)s, %(legacy_row)s::jsonb, %(ui_outcome)s, %(ui_blocking_reason)s)

-- name: insert_quarantine
-- The row and its `quarantine.recorded` event in one statement: one implicit transaction, one
-- round trip, no BEGIN/COMMIT (issue 7: the quarantine path at >= 0.8 x the apply path). The id is
-- made by the caller (a random v4 uuid, like the column default) because the event carries it.
-- Event parameters are `ev_` + the preview_event columns (telemetry.repository.event_params).
WITH quarantined AS (
    INSERT INTO daemon_event_quarantine (
        id, thread_id, thread_chat_id, run_id, active_run_id, reason, payload_version,
        payload_hash, payload_size, payload_prefix_2k, payload_inline, payload_object_key,
        offload_skipped, repo_full_name, user_id, sandbox_provider, event_id, seq, trace_id,
        token_run_id
    ) VALUES (
        %(id)s::uuid, %(thread_id)s, %(thread_chat_id)s, %(run_id)s, %(active_run_id)s,
        %(reason)s, %(payload_version)s, %(payload_hash)s, %(payload_size)s,
        %(payload_prefix_2k)s, %(payload_inline)s, %(payload_object_key)s, %(offload_skipped)s,
        %(repo_full_name)s, %(user_id)s, %(sandbox_provider)s, %(event_id)s, %(seq)s,
        %(trace_id)s, %(token_run_id)s
    )
)
INSERT INTO preview_event (
    ts_server, schema_version, event_name, origin, trace_id, thread_id, thread_chat_id, run_id,
    codesandbox_id, sandbox_provider, preview_session_id, user_id, proxy_req_id, properties
) VALUES (
    %(ev_ts_server)s, %(ev_schema_version)s, %(ev_event_name)s, %(ev_origin)s, %(ev_trace_id)s,
    %(ev_thread_id)s, %(ev_thread_chat_id)s, %(ev_run_id)s, %(ev_codesandbox_id)s,
    %(ev_sandbox_provider)s, %(ev_preview_session_id)s, %(ev_user_id)s, %(ev_proxy_req_id)s,
    %(ev_properties)s
)

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
       offload_skipped, payload_inline, replayed_at, replay_status, token_run_id
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
