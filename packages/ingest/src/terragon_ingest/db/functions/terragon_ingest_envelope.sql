-- The correlation decision of CONTRACT §4 and the exactly-once apply: every rule that needs state
-- is decided here, once, in the contract's order, and every entry point comes here (a delivery;
-- the same delivery again when its messages cannot be stored; an operator's replay). The service
-- decides only what needs no state (a token is present, the body's shape and field limits by the
-- decoder) and gathers what this function asks for when it answers `needs_inputs` (the sandbox's
-- HEAD and UI outcome for a terminal batch, the legacy_mode row for a legacy envelope), then calls
-- it again with them: the second call decides everything again, so nothing gathered can be stale.
--
-- outcome (terragon_core.CorrelationOutcome): unauthorized | forbidden | missing_run_id |
--   mismatch | invalid_envelope | payload_version_mismatch | duplicate | stale_seq |
--   missing_end_sha | needs_inputs | applied. Nothing is written unless outcome = 'applied'.
-- The context columns are set for every outcome but unauthorized / forbidden; `token_refusal`
-- (terragon_core.SecurityReason: expired | revoked) only for an unauthorized known token.
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
DECLARE
    v_token_thread text;
    v_token_run text;
    v_refusal text;
    v_token_chat text;
    v_ended boolean;
    v_version smallint;
    v_last_seq bigint;
    v_recorded boolean;
    v_verdict text;
    r thread_run%ROWTYPE;
    v_terminal boolean;
BEGIN
    applied_messages := 0;
    legacy := false;

    -- 1. token: a live token by its sha256 digest (the service checked it before decoding the
    -- body too; this is the authority): unknown, revoked or expired → 401 (terragon_daemon_token
    -- says which), then the thread it is bound to (403).
    IF p_token_hash IS NULL THEN
        token_run_id := p_token_run_id;
    ELSE
        SELECT k.thread_id, k.run_id, k.refusal INTO v_token_thread, v_token_run, v_refusal
        FROM terragon_daemon_token(p_token_hash) k;
        IF NOT FOUND OR v_refusal IS NOT NULL THEN
            outcome := 'unauthorized';
            token_refusal := v_refusal;
            RETURN;
        END IF;
        IF v_token_thread <> p_thread_id THEN
            outcome := 'forbidden';
            RETURN;
        END IF;
        token_run_id := v_token_run;
    END IF;
    -- 2. body shape: decided by the decoder before this call.

    -- The context, one snapshot: the (thread, chat) pointer; the frozen strict flag (the active
    -- run's, or with no active run the token's run's); the state of the token's run, the only run
    -- the envelope can be for (rule 3), for the end of rule 3 and rules 4 to 8.
    SELECT t.user_id, t.repo_full_name, t.repo_dir,
           COALESCE(a.sandbox_provider, t.sandbox_provider),
           COALESCE(a.codesandbox_id, t.codesandbox_id),
           c.active_run_id,
           COALESCE(a.frozen_daemon_run_id_strict, tr.frozen_daemon_run_id_strict, false),
           a.run_start_sha, tr.thread_chat_id, tr.status IN ('finished', 'failed'),
           tr.daemon_payload_version, tr.last_accepted_seq, tr.status,
           EXISTS (SELECT 1 FROM daemon_event e
                   WHERE e.run_id = tr.run_id AND e.event_id = p_dedupe_id)
    INTO user_id, repo_full_name, repo_dir, sandbox_provider, codesandbox_id, active_run_id,
         run_id_strict, run_start_sha, v_token_chat, v_ended, v_version, v_last_seq, run_status,
         v_recorded
    FROM thread t
    LEFT JOIN thread_run_context c
           ON c.thread_id = t.thread_id AND c.thread_chat_id = p_thread_chat_id
    LEFT JOIN thread_run a ON a.run_id = c.active_run_id
    LEFT JOIN thread_run tr ON tr.run_id = token_run_id
    WHERE t.thread_id = p_thread_id;
    run_id_strict := COALESCE(run_id_strict, false);

    -- 3. runId. A token authenticates only its own run's envelopes. strict=true: missing →
    -- missing_run_id. strict=false: missing → a legacy envelope for the active run, but only from
    -- that run's own daemon: under a superseded run's token, or with no active run, it is an old
    -- run's, never applied to another run. Given and not the token's run → mismatch, even when it
    -- names the active run. Then nothing is applied to an ended run: the verdict's first rule
    -- answers for it (duplicate / stale_seq where it repeats what was accepted, else mismatch),
    -- from this snapshot (an ended run's state no longer changes), before the field limits. Last,
    -- a run that is not the active one → mismatch.
    IF p_run_id IS NULL THEN
        IF run_id_strict THEN
            outcome := 'missing_run_id';
            RETURN;
        END IF;
        IF active_run_id IS NULL OR token_run_id IS DISTINCT FROM active_run_id THEN
            outcome := 'mismatch';
            RETURN;
        END IF;
        legacy := true;
    ELSIF p_run_id IS DISTINCT FROM token_run_id THEN
        outcome := 'mismatch';
        RETURN;
    END IF;
    IF v_ended AND v_token_chat = p_thread_chat_id THEN
        last_seq := v_last_seq;
        outcome := terragon_envelope_verdict(
            true, v_version, v_last_seq, v_recorded, p_payload_version, p_fields_valid, p_seq,
            p_terminal, p_end_sha);
        RETURN;
    END IF;
    IF active_run_id IS NULL OR token_run_id IS DISTINCT FROM active_run_id THEN
        outcome := 'mismatch';
        RETURN;
    END IF;

    -- Field limits (CONTRACT §4) and messages PostgreSQL cannot store: kept as a quarantine row,
    -- never bound or indexed (a 5xx would have the daemon retry it forever).
    IF NOT p_within_limits OR p_messages IS NULL THEN
        outcome := 'invalid_envelope';
        RETURN;
    END IF;

    -- 4 to 8 on the snapshot: a retry (duplicate) or a reordered batch (stale_seq) is answered
    -- without the run lock and writes nothing. It is what the locked evaluation below would answer
    -- at this snapshot: the payload version, once set, never changes; a dedupe record is never
    -- removed while its run is live; last_accepted_seq only grows.
    last_seq := v_last_seq;
    v_verdict := terragon_envelope_verdict(
        false, v_version, v_last_seq, v_recorded, p_payload_version, p_fields_valid, p_seq,
        p_terminal, p_end_sha);
    IF v_verdict IN ('duplicate', 'stale_seq') THEN
        outcome := v_verdict;
        RETURN;
    END IF;
    IF v_verdict IS NULL AND (p_terminal OR legacy) AND NOT p_inputs_ready THEN
        outcome := 'needs_inputs';
        RETURN;
    END IF;

    -- Under the run lock (every envelope of one run in turn): the pointer again (rule 3: it may
    -- have moved since the snapshot), then the end of rule 3 (the run may have ended since: a
    -- terminal envelope, a close) and rules 4 to 8 for good.
    SELECT * INTO r FROM thread_run WHERE run_id = active_run_id FOR UPDATE;
    IF NOT FOUND OR NOT EXISTS (
        SELECT 1 FROM thread_run_context c
        WHERE c.thread_id = r.thread_id AND c.thread_chat_id = r.thread_chat_id
          AND c.active_run_id = r.run_id
    ) THEN
        outcome := 'mismatch';
        RETURN;
    END IF;
    last_seq := r.last_accepted_seq;
    run_status := r.status;
    v_verdict := terragon_envelope_verdict(
        r.status IN ('finished', 'failed'), r.daemon_payload_version, r.last_accepted_seq,
        EXISTS (SELECT 1 FROM daemon_event e WHERE e.run_id = r.run_id AND e.event_id = p_dedupe_id),
        p_payload_version, p_fields_valid, p_seq, p_terminal, p_end_sha);
    IF v_verdict IS NOT NULL THEN
        outcome := v_verdict;
        RETURN;
    END IF;
    IF (p_terminal OR legacy) AND NOT p_inputs_ready THEN
        outcome := 'needs_inputs';
        RETURN;
    END IF;

    -- The apply, all or nothing: the messages (a message `uuid` at most once per run, one index
    -- probe per message: LATERAL … LIMIT 1 cannot become a hashed subplan over the whole run), the
    -- dedupe record, the run state (seq CAS, counters, status, the idempotent terminal transition
    -- keyed by terminal_event_id), the legacy_mode row and the legacy UI outcome.
    WITH incoming AS (
        SELECT m.value AS message, m.idx,
               CASE WHEN jsonb_typeof(m.value -> 'uuid') = 'string'
                    THEN NULLIF(m.value ->> 'uuid', '') END AS message_uuid
        FROM jsonb_array_elements(p_messages) WITH ORDINALITY AS m(value, idx)
    ), fresh AS (
        SELECT i.*, row_number() OVER (PARTITION BY i.message_uuid ORDER BY i.idx) AS nth
        FROM incoming i
        LEFT JOIN LATERAL (
            SELECT true AS hit FROM run_message rm
            WHERE rm.run_id = r.run_id AND rm.message_uuid = i.message_uuid
            LIMIT 1
        ) seen ON true
        WHERE seen.hit IS NULL
    ), kept AS (
        SELECT f.message, f.message_uuid, row_number() OVER (ORDER BY f.idx) AS n
        FROM fresh f WHERE f.message_uuid IS NULL OR f.nth = 1
    )
    INSERT INTO run_message (run_id, ordinal, event_id, message_uuid, message_type, message)
    SELECT r.run_id, r.accepted_message_count + k.n, p_dedupe_id, k.message_uuid,
           CASE WHEN jsonb_typeof(k.message -> 'type') = 'string' THEN k.message ->> 'type' END,
           k.message
    FROM kept k;
    GET DIAGNOSTICS applied_messages = ROW_COUNT;

    INSERT INTO daemon_event (run_id, event_id, seq, payload_version, message_count, applied_count, trace_id)
    VALUES (r.run_id, p_dedupe_id, p_seq, p_payload_version, jsonb_array_length(p_messages),
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
    WHERE run_id = r.run_id
    RETURNING thread_run.last_accepted_seq, thread_run.status INTO last_seq, run_status;

    IF legacy AND p_legacy_row IS NOT NULL THEN
        legacy_row_id := terragon_insert_quarantine(p_legacy_row);
    END IF;

    IF legacy AND p_ui_outcome IS NOT NULL AND v_terminal THEN
        INSERT INTO thread_ui_validation (thread_id, thread_chat_id, latest_run_id, outcome, blocking_reason)
        VALUES (r.thread_id, r.thread_chat_id, r.run_id, p_ui_outcome, p_ui_blocking_reason)
        ON CONFLICT (thread_id, thread_chat_id) DO UPDATE SET
            latest_run_id = EXCLUDED.latest_run_id,
            outcome = EXCLUDED.outcome,
            blocking_reason = EXCLUDED.blocking_reason,
            updated_at = now();
    END IF;

    outcome := 'applied';
END;
$$;
