-- The correlation decision of CONTRACT §4 and the exactly-once apply, for a batch of envelopes
-- decided as a set: every rule that needs state is decided here, once, in the contract's order,
-- and every entry point comes here (group commit; one envelope alone, through
-- terragon_ingest_envelope, a batch of one; an operator's replay). The service decides only what
-- needs no state (a token is present, the body's shape and field limits by the decoder) and
-- gathers what this function asks for when it answers `needs_inputs` (the sandbox's HEAD and UI
-- outcome for a terminal envelope, the legacy_mode row for a legacy one), then asks again, alone,
-- with them: the second call decides everything again, so nothing gathered can be stale.
--
-- outcome (terragon_core.CorrelationOutcome): unauthorized | forbidden | missing_run_id |
--   mismatch | invalid_envelope | payload_version_mismatch | duplicate | stale_seq |
--   missing_end_sha | needs_inputs | applied. Nothing is written unless outcome = 'applied'.
-- The context columns are set for every outcome but unauthorized / forbidden; `token_refusal`
-- (terragon_core.SecurityReason: expired | revoked) only for an unauthorized known token.
--
-- Two statements for a batch of different runs (the service's usual one), whatever its size
-- (issue 28: a loop of one decision per envelope paid the executor's start-up, the CHECK
-- constraints' set-up and a plan's bookkeeping once per envelope and statement):
-- 1. the run locks: every envelope's run (its token's), locked in one statement in run_id order
--    (one global order: batches never deadlock on each other), and each envelope's wave;
-- 2. the decision and the apply, one statement for the whole set, its snapshot taken after the
--    locks (so it sees everything committed to the locked runs): the token (rule 1), the runId
--    rules (3), then rules 4 to 8 (terragon_envelope_verdict) from one read of each run's state,
--    then every new message in one INSERT … SELECT, every dedupe record in one, every run in one
--    UPDATE … FROM.
--    Envelopes of one run keep their arrival order: the n-th envelope of a run in the batch is
--    decided in the n-th pass of statement 2 (a wave), after the earlier ones were written.
-- An earlier version read every envelope's whole context first, without a lock, to answer
-- retries from it: a third statement that cost a fifth of a batch's PostgreSQL CPU. Statement 1
-- now reads only what tells that an envelope cannot be applied, so that a retry, a reordered
-- envelope or a wrong runId still takes no lock and writes nothing.
--
-- Two modes, so that one envelope's failure never changes another's answer:
-- - p_isolated = false (the service's first try): the whole batch as above, no subtransaction.
--   Any error fails the whole statement and nothing of it is written;
-- - p_isolated = true (the service again, after such a failure): each envelope in its own
--   subtransaction (a batch of one), so a failing one rolls back its own effects only and comes
--   back `failed` with its SQLSTATE and nothing of it written: the service decides it again
--   alone. The others are decided exactly as in the first try (which wrote nothing).
--
-- p_batch: a JSON array of objects whose keys are terragon_ingest_envelope's parameter names
-- without `p_` (token_hash as hex; NULL for an operator replay, whose token_run_id names the
-- run). The legacy_mode row and the legacy UI outcome (`legacy_row`, `ui_outcome`) come only with
-- an envelope's inputs, which is always decided alone: terragon_ingest_envelope writes them; a
-- batch that carries them is refused.
-- p_first: the ordinal of the batch's first envelope (an isolated envelope is a batch of one).
-- A function file: re-applied whenever it changes (db/migrate.py); edit it in place.
CREATE FUNCTION terragon_ingest_envelopes(
    p_batch jsonb, p_isolated boolean DEFAULT true, p_first integer DEFAULT 0)
RETURNS TABLE (
    ordinal integer,
    failed_sqlstate text,
    outcome text,
    legacy boolean,
    applied_messages integer,
    last_seq bigint,
    run_status text,
    legacy_row_id uuid,
    token_run_id text,
    user_id text,
    repo_full_name text,
    repo_dir text,
    sandbox_provider text,
    codesandbox_id text,
    active_run_id text,
    run_id_strict boolean,
    run_start_sha text,
    token_refusal text
)
LANGUAGE plpgsql
-- One plan per statement per session, never re-planned per call: planning these statements costs
-- more than running them for a small batch, and every lookup in them is an index probe per
-- envelope (LATERAL … LIMIT 1), so the generic plan is the right one for any batch.
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    e jsonb;
    i integer;
    v_wave_of integer[];  -- each envelope's place among its run's envelopes in the batch
    v_waves integer;
    v_carries boolean;
    v_locked bigint;      -- the runs locked: read so that the locking CTE runs (unused after)
    v_wave integer;
BEGIN
    IF p_isolated THEN
        FOR e, i IN SELECT b.value, p_first + b.idx::integer - 1
                    FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS b(value, idx) LOOP
            BEGIN
                RETURN QUERY SELECT * FROM terragon_ingest_envelopes(jsonb_build_array(e), false, i);
            EXCEPTION WHEN OTHERS THEN
                -- The failed row: its ordinal and SQLSTATE; every other column is never
                -- assigned here (RETURN QUERY does not set them), so NULL.
                ordinal := i;
                failed_sqlstate := SQLSTATE;
                RETURN NEXT;
            END;
        END LOOP;
        RETURN;
    END IF;

    -- 1. The run locks, one order for every batch, and the waves. An unknown token's envelope
    -- has no run: it is refused in the first wave. A run is locked only when one of its
    -- envelopes may be applied: what is certain not to be, on the run's state as it is, takes no
    -- lock and writes nothing (a retry: its eventId recorded, or its seq not past the run's; an
    -- ended run; a runId that is not the token's run; a v2 envelope without eventId and seq;
    -- over-limit fields). Statement 2 decides those too, from its own read: each of these facts,
    -- once true, stays true (a dedupe record is never removed while its run is live,
    -- last_accepted_seq only grows, an ended run never runs again), so it never applies one.
    WITH runs AS (
        SELECT x.idx, x.legacy_row IS NOT NULL OR x.ui_outcome IS NOT NULL AS carries, k.run,
               -- Never NULL: what is not known to stop an envelope here may apply it.
               k.run IS NOT NULL AND (x.run_id IS NULL OR x.run_id = k.run)
                   AND x.within_limits IS NOT FALSE
                   AND NOT COALESCE(x.payload_version = 2 AND NOT x.fields_valid, false)
                   AND NOT COALESCE(s.retry, false) AS may_apply
        FROM ROWS FROM (jsonb_to_recordset(p_batch) AS (
                 token_hash text, token_run_id text, run_id text, dedupe_id text, seq bigint,
                 payload_version smallint, fields_valid boolean, within_limits boolean,
                 legacy_row jsonb, ui_outcome text))
             WITH ORDINALITY AS x(
                 token_hash, token_run_id, run_id, dedupe_id, seq, payload_version, fields_valid,
                 within_limits, legacy_row, ui_outcome, idx)
        LEFT JOIN LATERAL (
            SELECT CASE WHEN x.token_hash IS NULL THEN x.token_run_id ELSE (
                       SELECT d.run_id FROM daemon_token d
                       WHERE d.token_hash = decode(x.token_hash, 'hex') LIMIT 1) END AS run
        ) k ON true
        LEFT JOIN LATERAL (
            SELECT r.status IN ('finished', 'failed')
                   OR COALESCE(x.seq <= r.last_accepted_seq, false)
                   OR EXISTS (SELECT 1 FROM daemon_event e
                              WHERE e.run_id = r.run_id AND e.event_id = x.dedupe_id) AS retry
            FROM thread_run r WHERE r.run_id = k.run LIMIT 1
        ) s ON true
    ), locked AS (
        SELECT r.run_id FROM thread_run r
        WHERE r.run_id = ANY (ARRAY(SELECT w.run FROM runs w WHERE w.may_apply))
        ORDER BY r.run_id
        FOR UPDATE
    )
    SELECT array_agg(w.nth::integer ORDER BY w.idx), max(w.nth)::integer, bool_or(w.carries),
           (SELECT count(*) FROM locked)
    INTO v_wave_of, v_waves, v_carries, v_locked
    FROM (SELECT r.idx, r.carries,
                 CASE WHEN r.run IS NULL THEN 1
                      ELSE row_number() OVER (PARTITION BY r.run ORDER BY r.idx) END AS nth
          FROM runs r) w;
    IF v_carries THEN
        RAISE EXCEPTION 'a legacy_mode row or UI outcome comes only with an envelope alone'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- 2. Under the locks, a wave at a time: the decision and the apply, all or nothing: the
    -- messages (a message `uuid` at most once per run, one index probe per message:
    -- LATERAL … LIMIT 1 cannot become a hashed subplan over the whole run), the dedupe record,
    -- the run state (seq CAS, counters, status, the idempotent terminal transition keyed by
    -- terminal_event_id).
    FOR v_wave IN 1 .. COALESCE(v_waves, 0) LOOP
        RETURN QUERY
        WITH items AS (
            SELECT p_first + x.idx::integer - 1 AS ord, x.*
            FROM ROWS FROM (jsonb_to_recordset(p_batch) AS (
                token_hash text, token_run_id text, thread_id text, thread_chat_id text,
                run_id text, dedupe_id text, seq bigint, payload_version smallint,
                fields_valid boolean, within_limits boolean, messages jsonb, trace_id text,
                terminal boolean, failure boolean, end_sha text, inputs_ready boolean,
                diff_source text, diff_source_context text))
                 WITH ORDINALITY AS x(
                token_hash, token_run_id, thread_id, thread_chat_id, run_id, dedupe_id, seq,
                payload_version, fields_valid, within_limits, messages, trace_id, terminal,
                failure, end_sha, inputs_ready, diff_source, diff_source_context, idx)
            WHERE v_waves = 1 OR v_wave_of[x.idx::integer] = v_wave
        ), known AS (
            -- Rule 1, the token: a live token by its sha256 digest (the service checked it before
            -- decoding the body too; this is the authority): unknown, revoked or expired → 401
            -- (terragon_daemon_token says which), then the thread it is bound to (403).
            SELECT i.*, k.refusal AS k_refusal,
                   CASE WHEN i.token_hash IS NULL THEN i.token_run_id ELSE k.run_id END AS k_run,
                   CASE WHEN i.token_hash IS NULL THEN NULL
                        WHEN k.run_id IS NULL OR k.refusal IS NOT NULL THEN 'unauthorized'
                        WHEN k.thread_id <> i.thread_id THEN 'forbidden' END AS refused
            FROM items i
            LEFT JOIN LATERAL (
                SELECT * FROM terragon_daemon_token(decode(i.token_hash, 'hex')) LIMIT 1) k ON true
        ), context AS (
            -- The context: the (thread, chat) pointer; the active run (the frozen strict flag,
            -- the sandbox, the start sha: with no active run, the token's run's strict flag);
            -- the state of the token's run, the only run the envelope can be for (rule 3), read
            -- under its lock. Every lookup a LATERAL … LIMIT 1: one index probe per envelope,
            -- whatever the batch's size (the plan is generic: joined, a batch estimated at 100
            -- rows made PostgreSQL hash whole tables); the active run is read again only when it
            -- is not the token's run.
            SELECT n.*, t.user_id AS c_user, t.repo_full_name AS c_repo, t.repo_dir AS c_dir,
                   t.sandbox_provider AS t_provider, t.codesandbox_id AS t_sandbox,
                   c.active_run_id AS c_active,
                   tr.run_id AS r_run, tr.thread_chat_id AS r_chat,
                   tr.status IN ('finished', 'failed') AS r_ended,
                   tr.daemon_payload_version AS r_version, tr.last_accepted_seq AS r_last_seq,
                   tr.accepted_message_count AS r_count, tr.terminal_event_id AS r_terminal_event,
                   tr.status AS r_status, tr.recorded AS r_recorded,
                   CASE WHEN c.active_run_id = n.k_run THEN tr.sandbox_provider
                        ELSE a.sandbox_provider END AS a_provider,
                   CASE WHEN c.active_run_id = n.k_run THEN tr.codesandbox_id
                        ELSE a.codesandbox_id END AS a_sandbox,
                   CASE WHEN c.active_run_id = n.k_run THEN tr.frozen_daemon_run_id_strict
                        ELSE a.frozen_daemon_run_id_strict END AS a_strict,
                   CASE WHEN c.active_run_id = n.k_run THEN tr.run_start_sha
                        ELSE a.run_start_sha END AS a_start_sha,
                   tr.frozen_daemon_run_id_strict AS r_strict
            FROM known n
            LEFT JOIN LATERAL (
                SELECT t.thread_id, t.user_id, t.repo_full_name, t.repo_dir, t.sandbox_provider,
                       t.codesandbox_id
                FROM thread t WHERE n.refused IS NULL AND t.thread_id = n.thread_id LIMIT 1
            ) t ON true
            LEFT JOIN LATERAL (
                SELECT c.active_run_id FROM thread_run_context c
                WHERE c.thread_id = t.thread_id AND c.thread_chat_id = n.thread_chat_id LIMIT 1
            ) c ON true
            LEFT JOIN LATERAL (
                SELECT tr.run_id, tr.thread_chat_id, tr.status, tr.daemon_payload_version,
                       tr.last_accepted_seq, tr.accepted_message_count, tr.terminal_event_id,
                       tr.frozen_daemon_run_id_strict, tr.run_start_sha, tr.sandbox_provider,
                       tr.codesandbox_id,
                       EXISTS (SELECT 1 FROM daemon_event d
                               WHERE d.run_id = tr.run_id AND d.event_id = n.dedupe_id) AS recorded
                FROM thread_run tr WHERE t.thread_id IS NOT NULL AND tr.run_id = n.k_run LIMIT 1
            ) tr ON true
            LEFT JOIN LATERAL (
                SELECT a.sandbox_provider, a.codesandbox_id, a.frozen_daemon_run_id_strict,
                       a.run_start_sha
                FROM thread_run a
                WHERE a.run_id = c.active_run_id AND c.active_run_id IS DISTINCT FROM n.k_run
                LIMIT 1
            ) a ON true
        ), checked AS (
            -- Rule 3, runId, its first part: a token authenticates only its own run's envelopes.
            -- strict=true: missing → missing_run_id. strict=false: missing → a legacy envelope for
            -- the active run, but only from that run's own daemon: under a superseded run's
            -- token, or with no active run, it is an old run's, never applied to another run.
            -- Given and not the token's run → mismatch, even when it names the active run.
            SELECT x.*, ok.run_id_ok,
                   ok.run_id_ok AND x.r_ended AND x.r_chat = x.thread_chat_id AS ended_here
            FROM (SELECT y.*, COALESCE(y.a_strict, y.r_strict, false) AS c_strict
                  FROM context y) x,
                 LATERAL (SELECT
                x.refused IS NULL
                AND NOT (x.run_id IS NULL AND (x.c_strict OR x.c_active IS NULL
                                               OR x.c_active IS DISTINCT FROM x.k_run))
                AND NOT (x.run_id IS NOT NULL AND x.run_id IS DISTINCT FROM x.k_run) AS run_id_ok
            ) ok
        ), decided AS (
            -- Then the runId rule's end: nothing is applied to an ended run: the verdict's first
            -- rule answers for it (duplicate / stale_seq where it repeats what was accepted, else
            -- mismatch), before the field limits. Last, a run that is not the active one →
            -- mismatch. Then the field limits (CONTRACT §4) and messages PostgreSQL cannot store:
            -- kept as a quarantine row, never bound or indexed (a 5xx would have the daemon retry
            -- it forever). Then rules 4 to 8, and a terminal or legacy envelope that first needs
            -- its inputs.
            SELECT x.*,
                   x.run_id_ok AND x.run_id IS NULL AS is_legacy,
                   CASE
                       WHEN x.refused IS NOT NULL THEN x.refused
                       WHEN x.run_id IS NULL AND x.c_strict THEN 'missing_run_id'
                       WHEN NOT x.run_id_ok THEN 'mismatch'
                       WHEN x.ended_here THEN terragon_envelope_verdict(
                           true, x.r_version, x.r_last_seq, x.r_recorded, x.payload_version,
                           x.fields_valid, x.seq, x.terminal, x.end_sha)
                       WHEN x.c_active IS NULL OR x.k_run IS DISTINCT FROM x.c_active
                           THEN 'mismatch'
                       WHEN NOT x.within_limits OR jsonb_typeof(x.messages) IS DISTINCT FROM 'array'
                           THEN 'invalid_envelope'
                   END AS early,
                   COALESCE(
                       terragon_envelope_verdict(
                           false, x.r_version, x.r_last_seq, x.r_recorded, x.payload_version,
                           x.fields_valid, x.seq, x.terminal, x.end_sha),
                       CASE WHEN (x.terminal OR x.run_id IS NULL) AND NOT x.inputs_ready
                            THEN 'needs_inputs' END) AS verdict,
                   x.terminal AND x.r_terminal_event IS NULL
                       AND x.r_status IN ('booting', 'running', 'validating') AS ends_run
            FROM checked x
        ), applying AS (
            SELECT * FROM decided WHERE early IS NULL AND verdict IS NULL
        ), incoming AS (
            SELECT a.ord, a.r_run, a.r_count, a.dedupe_id, m.value AS message, m.idx,
                   CASE WHEN jsonb_typeof(m.value -> 'uuid') = 'string'
                        THEN NULLIF(m.value ->> 'uuid', '') END AS message_uuid
            FROM applying a, jsonb_array_elements(a.messages) WITH ORDINALITY AS m(value, idx)
        ), fresh AS (
            SELECT f.*, row_number() OVER (PARTITION BY f.ord, f.message_uuid ORDER BY f.idx) AS dup
            FROM incoming f
            LEFT JOIN LATERAL (
                SELECT true AS hit FROM run_message rm
                WHERE rm.run_id = f.r_run AND rm.message_uuid = f.message_uuid
                LIMIT 1
            ) seen ON true
            WHERE seen.hit IS NULL
        ), kept AS (
            SELECT f.*, row_number() OVER (PARTITION BY f.ord ORDER BY f.idx) AS n
            FROM fresh f WHERE f.message_uuid IS NULL OR f.dup = 1
        ), stored AS (
            INSERT INTO run_message (run_id, ordinal, event_id, message_uuid, message_type, message)
            SELECT k.r_run, k.r_count + k.n, k.dedupe_id, k.message_uuid,
                   CASE WHEN jsonb_typeof(k.message -> 'type') = 'string'
                        THEN k.message ->> 'type' END,
                   k.message
            FROM kept k
        ), counted AS (
            SELECT a.*, COALESCE(k.n, 0)::integer AS applied_n
            FROM applying a
            LEFT JOIN (SELECT k.ord, count(*) AS n FROM kept k GROUP BY k.ord) k ON k.ord = a.ord
        ), recorded AS (
            INSERT INTO daemon_event (
                run_id, event_id, seq, payload_version, message_count, applied_count, trace_id)
            SELECT a.r_run, a.dedupe_id, a.seq, a.payload_version, jsonb_array_length(a.messages),
                   a.applied_n, a.trace_id
            FROM counted a
        ), updated AS (
            UPDATE thread_run SET
                daemon_payload_version = a.payload_version,
                last_accepted_seq = COALESCE(a.seq, thread_run.last_accepted_seq),
                accepted_event_count = thread_run.accepted_event_count + 1,
                accepted_message_count = thread_run.accepted_message_count + a.applied_n,
                last_event_at = now(),
                status = CASE
                    WHEN a.ends_run AND a.failure THEN 'failed'
                    WHEN a.ends_run THEN 'finished'
                    WHEN thread_run.status = 'booting' THEN 'running'
                    ELSE thread_run.status END,
                run_end_sha = CASE WHEN a.ends_run THEN a.end_sha ELSE thread_run.run_end_sha END,
                diff_source = CASE WHEN a.ends_run THEN a.diff_source
                                   ELSE thread_run.diff_source END,
                diff_source_context = CASE WHEN a.ends_run THEN a.diff_source_context
                                           ELSE thread_run.diff_source_context END,
                terminal_event_id = CASE WHEN a.ends_run THEN a.dedupe_id
                                         ELSE thread_run.terminal_event_id END,
                finish_reason = CASE
                    WHEN a.ends_run AND a.failure THEN 'agent_error'
                    WHEN a.ends_run THEN 'completed'
                    ELSE thread_run.finish_reason END,
                ended_at = CASE WHEN a.ends_run THEN now() ELSE thread_run.ended_at END
            FROM counted a
            WHERE thread_run.run_id = a.r_run
            RETURNING a.ord, a.applied_n, thread_run.last_accepted_seq AS u_last_seq,
                      thread_run.status AS u_status
        )
        -- The answer: a refused envelope's carries nothing but its refusal (the token says no
        -- more); `last_seq` once a verdict read the run's state.
        SELECT d.ord, NULL::text, COALESCE(d.early, d.verdict, 'applied'),
               d.refused IS NULL AND d.is_legacy,
               COALESCE(u.applied_n, 0),
               CASE WHEN u.ord IS NOT NULL THEN u.u_last_seq
                    WHEN d.refused IS NULL AND (d.early IS NULL OR d.ended_here)
                        THEN d.r_last_seq END,
               CASE WHEN u.ord IS NOT NULL THEN u.u_status
                    WHEN d.refused IS NULL THEN d.r_status END,
               NULL::uuid, r.k_run, r.c_user, r.c_repo, r.c_dir,
               COALESCE(r.a_provider, r.t_provider), COALESCE(r.a_sandbox, r.t_sandbox),
               r.c_active, r.c_strict, r.a_start_sha,
               CASE WHEN d.refused IS NOT NULL THEN d.k_refusal END
        FROM decided d
        LEFT JOIN updated u ON u.ord = d.ord
        LEFT JOIN LATERAL (
            SELECT d.k_run, d.c_user, d.c_repo, d.c_dir, d.a_provider, d.t_provider,
                   d.a_sandbox, d.t_sandbox, d.c_active, d.c_strict, d.a_start_sha
            WHERE d.refused IS NULL
        ) r ON true;
    END LOOP;
END;
$$;
