-- One envelope: a batch of one through the decision (terragon_ingest_envelopes, where every rule
-- that needs state is decided, once, in CONTRACT §4's order), then what only an envelope's inputs
-- bring: the legacy_mode row of a legacy envelope and the legacy UI outcome of its terminal one.
-- The service calls this for an envelope alone (its first try outside group commit, the call with
-- the inputs `needs_inputs` asked for, an operator's replay); group commit calls the batch.
--
-- outcome (terragon_core.CorrelationOutcome) and the other columns: terragon_ingest_envelopes'.
-- Called with named arguments (daemon_events/queries.sql).
-- A function file: re-applied whenever it changes (db/migrate.py); edit it in place.
CREATE FUNCTION terragon_ingest_envelope(
    p_token_hash bytea,           -- NULL for an operator replay: p_token_run_id names the run
    p_token_run_id text,
    p_thread_id text,
    p_thread_chat_id text,
    p_run_id text,                -- NULL when not given
    p_dedupe_id text,             -- the eventId, or (v1 without one) a hash of the body
    p_seq bigint,
    p_payload_version smallint,
    p_fields_valid boolean,       -- v2: eventId and a positive seq are given
    p_within_limits boolean,      -- CONTRACT §4 field limits (over-limit values arrive as NULL)
    p_messages jsonb,             -- NULL when PostgreSQL cannot store them
    p_trace_id text,
    p_terminal boolean,
    p_failure boolean,
    p_end_sha text,
    p_inputs_ready boolean,       -- the second call: what `needs_inputs` asked for is below
    p_diff_source text,
    p_diff_source_context text,
    p_legacy_row jsonb,           -- NULL on a replay (a replay writes no new rows)
    p_ui_outcome text,
    p_ui_blocking_reason text,
    OUT outcome text,
    OUT legacy boolean,
    OUT applied_messages integer,
    OUT last_seq bigint,
    OUT run_status text,
    OUT legacy_row_id uuid,
    OUT token_run_id text,
    OUT user_id text,
    OUT repo_full_name text,
    OUT repo_dir text,
    OUT sandbox_provider text,
    OUT codesandbox_id text,
    OUT active_run_id text,
    OUT run_id_strict boolean,
    OUT run_start_sha text,
    OUT token_refusal text
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    SELECT d.outcome, d.legacy, d.applied_messages, d.last_seq, d.run_status, d.token_run_id,
           d.user_id, d.repo_full_name, d.repo_dir, d.sandbox_provider, d.codesandbox_id,
           d.active_run_id, d.run_id_strict, d.run_start_sha, d.token_refusal
    INTO outcome, legacy, applied_messages, last_seq, run_status, token_run_id, user_id,
         repo_full_name, repo_dir, sandbox_provider, codesandbox_id, active_run_id,
         run_id_strict, run_start_sha, token_refusal
    FROM terragon_ingest_envelopes(
        jsonb_build_array(jsonb_build_object(
            'token_hash', encode(p_token_hash, 'hex'), 'token_run_id', p_token_run_id,
            'thread_id', p_thread_id, 'thread_chat_id', p_thread_chat_id, 'run_id', p_run_id,
            'dedupe_id', p_dedupe_id, 'seq', p_seq, 'payload_version', p_payload_version,
            'fields_valid', p_fields_valid, 'within_limits', p_within_limits,
            'messages', p_messages, 'trace_id', p_trace_id, 'terminal', p_terminal,
            'failure', p_failure, 'end_sha', p_end_sha, 'inputs_ready', p_inputs_ready,
            'diff_source', p_diff_source, 'diff_source_context', p_diff_source_context)),
        false) AS d;
    IF outcome <> 'applied' OR NOT legacy THEN
        RETURN;
    END IF;
    -- A legacy envelope applied: its legacy_mode row (a replay writes none: no row is given),
    -- and, when it ended the run, the legacy UI outcome.
    IF p_legacy_row IS NOT NULL THEN
        legacy_row_id := terragon_insert_quarantine(p_legacy_row);
    END IF;
    IF p_ui_outcome IS NOT NULL AND p_terminal AND run_status IN ('finished', 'failed') THEN
        INSERT INTO thread_ui_validation (thread_id, thread_chat_id, latest_run_id, outcome, blocking_reason)
        VALUES (p_thread_id, p_thread_chat_id, token_run_id, p_ui_outcome, p_ui_blocking_reason)
        ON CONFLICT (thread_id, thread_chat_id) DO UPDATE SET
            latest_run_id = EXCLUDED.latest_run_id,
            outcome = EXCLUDED.outcome,
            blocking_reason = EXCLUDED.blocking_reason,
            updated_at = now();
    END IF;
END;
$$;
