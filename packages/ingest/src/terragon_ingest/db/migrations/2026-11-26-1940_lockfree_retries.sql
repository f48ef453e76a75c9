-- Duplicate and stale envelopes answered without the run lock (CONTRACT §4, issue 7).
-- Never edit this file once landed: add a new migration instead (see CONTRIBUTING.md).
--
-- terragon_ingest_envelope (2026-11-26-1930) as before, plus: the context read also reads the
-- active run's payload version, last accepted seq and whether the eventId is already recorded,
-- in the same snapshot; a duplicate or stale envelope is answered from it, so the two retry paths
-- take no row lock and write nothing (no transaction id, no WAL). Same signature, same outcomes.
CREATE OR REPLACE FUNCTION terragon_ingest_envelope(
    p_token_hash bytea,
    p_thread_id text,
    p_thread_chat_id text,
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
    OUT outcome text,
    OUT applied_messages integer,
    OUT last_seq bigint,
    OUT run_status text,
    OUT token_run_id text,
    OUT user_id text,
    OUT repo_full_name text,
    OUT repo_dir text,
    OUT sandbox_provider text,
    OUT codesandbox_id text,
    OUT active_run_id text,
    OUT run_id_strict boolean,
    OUT run_start_sha text
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_token_thread text;
    v_version smallint;
    v_last_seq bigint;
    v_duplicate boolean;
BEGIN
    applied_messages := 0;

    -- Rule 1, token: a live token by its sha256 digest (the primary key).
    SELECT k.thread_id, k.run_id INTO v_token_thread, token_run_id
    FROM daemon_token k WHERE k.token_hash = p_token_hash AND k.revoked_at IS NULL;
    IF NOT FOUND THEN
        outcome := 'unauthorized';
        RETURN;
    END IF;
    -- (Rule 2, body shape, was decided by the caller before this call.) The thread binding: 403.
    IF v_token_thread <> p_thread_id THEN
        outcome := 'forbidden';
        RETURN;
    END IF;

    -- The context: what daemon_events/queries.sql `fetch_envelope_context` reads.
    SELECT t.user_id, t.repo_full_name, t.repo_dir,
           COALESCE(a.sandbox_provider, t.sandbox_provider),
           COALESCE(a.codesandbox_id, t.codesandbox_id),
           c.active_run_id,
           COALESCE(a.frozen_daemon_run_id_strict, tr.frozen_daemon_run_id_strict, false),
           a.run_start_sha,
           a.daemon_payload_version, a.last_accepted_seq, a.status,
           EXISTS (SELECT 1 FROM daemon_event e
                   WHERE e.run_id = c.active_run_id AND e.event_id = p_dedupe_id)
    INTO user_id, repo_full_name, repo_dir, sandbox_provider, codesandbox_id, active_run_id,
         run_id_strict, run_start_sha, v_version, v_last_seq, run_status, v_duplicate
    FROM thread t
    LEFT JOIN thread_run_context c
           ON c.thread_id = t.thread_id AND c.thread_chat_id = p_thread_chat_id
    LEFT JOIN thread_run a ON a.run_id = c.active_run_id
    LEFT JOIN thread_run tr ON tr.run_id = token_run_id
    WHERE t.thread_id = p_thread_id;

    -- Rule 3, runId: only the trivial pass is decided here; terminal batches need the sandbox.
    IF p_run_id IS NULL OR active_run_id IS NULL OR p_run_id <> active_run_id OR p_terminal THEN
        outcome := 'decide';
        RETURN;
    END IF;

    -- Rules 4 to 6 answered from the snapshot of the context read, without the run lock, when
    -- they end in `duplicate` or `stale_seq`: that is exactly what terragon_apply_envelope would
    -- answer had it run at this snapshot (the pointer named this run; the payload version, once
    -- set, never changes; a dedupe record is never removed while its run is live; last_accepted_seq
    -- only grows), and neither answer writes. So retries and reordered batches take no row lock,
    -- no transaction id and no WAL. Any other case goes to the locked path below.
    last_seq := v_last_seq;
    IF v_version IS NOT NULL AND v_version = p_payload_version
       AND (p_payload_version <> 2 OR p_fields_valid) THEN
        IF v_duplicate THEN
            outcome := 'duplicate';
            RETURN;
        END IF;
        IF p_seq IS NOT NULL AND v_last_seq IS NOT NULL AND p_seq <= v_last_seq THEN
            outcome := 'stale_seq';
            RETURN;
        END IF;
    END IF;

    -- Rules 4 to 7 and the exactly-once apply, unchanged (migration 2026-11-26-1820).
    SELECT x.outcome, x.applied_messages, x.last_seq, x.run_status
    INTO outcome, applied_messages, last_seq, run_status
    FROM terragon_apply_envelope(
        p_run_id, p_dedupe_id, p_seq, p_payload_version, p_fields_valid, p_messages, p_trace_id,
        false, p_failure, p_end_sha, NULL, NULL, NULL, NULL, NULL) AS x;
END;
$$;
