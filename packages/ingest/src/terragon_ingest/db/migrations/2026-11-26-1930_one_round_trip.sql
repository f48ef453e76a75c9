-- One round trip per daemon envelope on the happy path (CONTRACT §4, issue 7).
-- Never edit this file once landed: add a new migration instead (see CONTRIBUTING.md).
--
-- terragon_ingest_envelope folds the token lookup and the context read into the apply, so an
-- ordinary envelope costs one statement: the token (rule 1), the thread binding (403), the
-- (thread, chat) pointer and the run's frozen snapshot, then — when the runId rule passes
-- trivially (runId given and equal to the active run) and the batch is not terminal — the
-- unchanged terragon_apply_envelope (rules 4 to 7 under the run lock, and the exactly-once
-- write). Everything else is answered with outcome 'decide' and the context, and the Python
-- decision (daemon_events/service.py `correlate`) takes over without re-reading it:
-- missing runId (missing_run_id / legacy), runId mismatch, terminal batches (sandbox HEAD read).
--
-- outcome: unauthorized | forbidden | decide | <any outcome of terragon_apply_envelope>.
-- The context columns are set for every outcome but unauthorized / forbidden.
-- Nothing is written unless outcome = 'applied' (the apply is all or nothing).
CREATE FUNCTION terragon_ingest_envelope(
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
           a.run_start_sha
    INTO user_id, repo_full_name, repo_dir, sandbox_provider, codesandbox_id, active_run_id,
         run_id_strict, run_start_sha
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

    -- Rules 4 to 7 and the exactly-once apply, unchanged (migration 2026-11-26-1820).
    SELECT x.outcome, x.applied_messages, x.last_seq, x.run_status
    INTO outcome, applied_messages, last_seq, run_status
    FROM terragon_apply_envelope(
        p_run_id, p_dedupe_id, p_seq, p_payload_version, p_fields_valid, p_messages, p_trace_id,
        false, p_failure, p_end_sha, NULL, NULL, NULL, NULL, NULL) AS x;
END;
$$;
