-- The per-message dedupe probe of terragon_apply_envelope reads one index entry per incoming
-- message, whatever the planner's statistics say (issue 7).
-- Never edit this file once landed: add a new migration instead (see CONTRIBUTING.md).
--
-- Found by tools/bench: the 2026-11-26-1820 body wrote the check as
-- `message_uuid IS NULL OR NOT EXISTS (SELECT 1 FROM run_message WHERE run_id = .. AND
-- message_uuid = ..)`. PostgreSQL may run an OR'ed EXISTS as a *hashed* subplan, and it does when
-- the session first plans the function while run_message is small (a fresh database, a new
-- deploy): every later envelope then reads all of its run's messages to build the hash, so a run
-- gets slower with every message it has (PostgreSQL CPU per envelope doubled within seconds in
-- the benchmark; a long run pays O(its size) per envelope). Session plan caches keep that plan
-- for the connection's life. The LATERAL probe with LIMIT 1 is always an index lookup
-- (run_message_uuid). Same signature, same outcomes; only that CTE changed.
CREATE OR REPLACE FUNCTION terragon_apply_envelope(
    p_run_id text,
    p_dedupe_id text,
    p_seq bigint,
    p_payload_version smallint,
    p_fields_valid boolean,
    p_messages jsonb,
    p_trace_id text,
    p_terminal boolean,
    p_failure boolean,
    p_end_sha text,
    p_diff_source text,
    p_diff_source_context text,
    p_legacy_row jsonb,
    p_ui_outcome text,
    p_ui_blocking_reason text,
    OUT outcome text,
    OUT applied_messages integer,
    OUT last_seq bigint,
    OUT run_status text,
    OUT legacy_row_id uuid
)
LANGUAGE plpgsql AS $$
DECLARE
    r thread_run%ROWTYPE;
    v_terminal boolean;
BEGIN
    applied_messages := 0;
    SELECT * INTO r FROM thread_run WHERE run_id = p_run_id FOR UPDATE;
    IF NOT FOUND OR NOT EXISTS (
        SELECT 1 FROM thread_run_context c
        WHERE c.thread_id = r.thread_id AND c.thread_chat_id = r.thread_chat_id
          AND c.active_run_id = p_run_id
    ) THEN
        outcome := 'mismatch';  -- superseded or released since the caller read the pointer
        RETURN;
    END IF;
    last_seq := r.last_accepted_seq;
    run_status := r.status;

    IF r.daemon_payload_version IS NOT NULL AND r.daemon_payload_version <> p_payload_version THEN
        outcome := 'payload_version_mismatch';
        RETURN;
    END IF;
    IF p_payload_version = 2 AND NOT p_fields_valid THEN
        outcome := 'invalid_envelope';
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM daemon_event e WHERE e.run_id = p_run_id AND e.event_id = p_dedupe_id) THEN
        outcome := 'duplicate';
        RETURN;
    END IF;
    IF p_seq IS NOT NULL AND r.last_accepted_seq IS NOT NULL AND p_seq <= r.last_accepted_seq THEN
        outcome := 'stale_seq';
        RETURN;
    END IF;
    IF p_terminal AND p_payload_version = 2 AND p_end_sha IS NULL THEN
        outcome := 'missing_end_sha';
        RETURN;
    END IF;

    WITH incoming AS (
        SELECT m.value AS message, m.idx,
               CASE WHEN jsonb_typeof(m.value -> 'uuid') = 'string'
                    THEN NULLIF(m.value ->> 'uuid', '') END AS message_uuid
        FROM jsonb_array_elements(p_messages) WITH ORDINALITY AS m(value, idx)
    ), fresh AS (
        -- One probe of run_message_uuid per incoming message (LATERAL ... LIMIT 1 cannot be
        -- turned into a hashed subplan that reads every message of the run).
        SELECT i.*, row_number() OVER (PARTITION BY i.message_uuid ORDER BY i.idx) AS nth
        FROM incoming i
        LEFT JOIN LATERAL (
            SELECT true AS hit FROM run_message rm
            WHERE rm.run_id = p_run_id AND rm.message_uuid = i.message_uuid
            LIMIT 1
        ) seen ON true
        WHERE seen.hit IS NULL
    ), kept AS (
        SELECT f.message, f.message_uuid, row_number() OVER (ORDER BY f.idx) AS n
        FROM fresh f WHERE f.message_uuid IS NULL OR f.nth = 1
    )
    INSERT INTO run_message (run_id, ordinal, event_id, message_uuid, message_type, message)
    SELECT p_run_id, r.accepted_message_count + k.n, p_dedupe_id, k.message_uuid,
           CASE WHEN jsonb_typeof(k.message -> 'type') = 'string' THEN k.message ->> 'type' END,
           k.message
    FROM kept k;
    GET DIAGNOSTICS applied_messages = ROW_COUNT;

    INSERT INTO daemon_event (run_id, event_id, seq, payload_version, message_count, applied_count, trace_id)
    VALUES (p_run_id, p_dedupe_id, p_seq, p_payload_version, jsonb_array_length(p_messages),
            applied_messages, p_trace_id);

    v_terminal := p_terminal AND r.terminal_event_id IS NULL
                  AND r.status IN ('booting', 'running', 'validating');
    UPDATE thread_run SET
        daemon_payload_version = p_payload_version,
        last_accepted_seq = COALESCE(p_seq, thread_run.last_accepted_seq),
        accepted_event_count = thread_run.accepted_event_count + 1,
        accepted_message_count = thread_run.accepted_message_count + applied_messages,
        last_event_at = now(),
        status = CASE
            WHEN v_terminal AND p_failure THEN 'failed'
            WHEN v_terminal THEN 'finished'
            WHEN thread_run.status = 'booting' THEN 'running'
            ELSE thread_run.status END,
        run_end_sha = CASE WHEN v_terminal THEN p_end_sha ELSE thread_run.run_end_sha END,
        diff_source = CASE WHEN v_terminal THEN p_diff_source ELSE thread_run.diff_source END,
        diff_source_context = CASE WHEN v_terminal THEN p_diff_source_context
                                   ELSE thread_run.diff_source_context END,
        terminal_event_id = CASE WHEN v_terminal THEN p_dedupe_id ELSE thread_run.terminal_event_id END,
        finish_reason = CASE
            WHEN v_terminal AND p_failure THEN 'agent_error'
            WHEN v_terminal THEN 'completed'
            ELSE thread_run.finish_reason END,
        ended_at = CASE WHEN v_terminal THEN now() ELSE thread_run.ended_at END
    WHERE run_id = p_run_id
    RETURNING thread_run.last_accepted_seq, thread_run.status INTO last_seq, run_status;

    IF p_legacy_row IS NOT NULL THEN
        INSERT INTO daemon_event_quarantine (
            thread_id, thread_chat_id, run_id, active_run_id, reason, payload_version,
            payload_hash, payload_size, payload_prefix_2k, payload_inline, payload_object_key,
            offload_skipped, repo_full_name, user_id, sandbox_provider, event_id, seq, trace_id)
        SELECT q.thread_id, q.thread_chat_id, q.run_id, q.active_run_id, q.reason, q.payload_version,
               q.payload_hash, q.payload_size, q.payload_prefix_2k, q.payload_inline,
               q.payload_object_key, COALESCE(q.offload_skipped, false), q.repo_full_name,
               q.user_id, q.sandbox_provider, q.event_id, q.seq, q.trace_id
        FROM jsonb_populate_record(NULL::daemon_event_quarantine, p_legacy_row) AS q
        RETURNING id INTO legacy_row_id;
    END IF;

    IF p_ui_outcome IS NOT NULL AND v_terminal THEN
        INSERT INTO thread_ui_validation (thread_id, thread_chat_id, latest_run_id, outcome, blocking_reason)
        VALUES (r.thread_id, r.thread_chat_id, p_run_id, p_ui_outcome, p_ui_blocking_reason)
        ON CONFLICT (thread_id, thread_chat_id) DO UPDATE SET
            latest_run_id = EXCLUDED.latest_run_id,
            outcome = EXCLUDED.outcome,
            blocking_reason = EXCLUDED.blocking_reason,
            updated_at = now();
    END IF;

    outcome := 'applied';
END;
$$;
