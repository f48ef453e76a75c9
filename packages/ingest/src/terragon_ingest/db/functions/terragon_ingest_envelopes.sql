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
-- Three statements, whatever the batch's size (issue 28: a loop of one decision per envelope
-- paid the executor's start-up, the CHECK constraints' set-up and a plan's bookkeeping once per
-- envelope and statement):
-- 1. the snapshot, no lock: every envelope's token, runId rules (1 and 3) and, on the run's state
--    as it is, what needs no lock (an ended run; a retry: `duplicate`; a reordered envelope:
--    `stale_seq`; a terminal or legacy one that first needs its inputs). What it answers is what
--    the locked evaluation would answer: a payload version, once set, never changes; a dedupe
--    record is never removed while its run is live; last_accepted_seq only grows; nothing in a
--    batch ends a run or moves a pointer.
-- 2. the run locks of the rest, in one statement, in run_id order (one global order: batches
--    never deadlock on each other);
-- 3. the decision under the lock and the apply, one statement for the whole set: the pointer
--    again (rule 3: it may have moved since the snapshot), the end of rule 3 and rules 4 to 8
--    (terragon_envelope_verdict), then every new message in one INSERT … SELECT, every dedupe
--    record in one, every run in one UPDATE … FROM. Its snapshot is taken after the locks, so it
--    sees everything committed to the locked runs.
--    Envelopes of one run keep their arrival order: the n-th envelope of a run in the batch is
--    decided in the n-th pass of statement 3 (a wave), after the earlier ones were written. A
--    batch of different runs (the service's usual one) is one wave.
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
    s record;
    v_pending integer[] := '{}';  -- envelopes left for the lock, by ordinal
    v_wave_of integer[] := '{}';  -- each one's place among its run's envelopes in the batch
    v_runs text[] := '{}';        -- their runs
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

    -- 1. The snapshot. A final answer is returned at once; the rest wait for the lock.
    FOR s IN
        WITH items AS (
            SELECT p_first + x.ordinality::integer - 1 AS ord, x.*
            FROM ROWS FROM (jsonb_to_recordset(p_batch) AS (
                token_hash text, token_run_id text, thread_id text, thread_chat_id text,
                run_id text, dedupe_id text, seq bigint, payload_version smallint,
                fields_valid boolean, within_limits boolean, messages jsonb, terminal boolean,
                end_sha text, inputs_ready boolean, legacy_row jsonb, ui_outcome text))
                 WITH ORDINALITY AS x
        ), known AS (
            -- Rule 1, the token: a live token by its sha256 digest (the service checked it before
            -- decoding the body too; this is the authority): unknown, revoked or expired → 401
            -- (terragon_daemon_token says which), then the thread it is bound to (403).
            SELECT i.*, k.thread_id AS k_thread, k.refusal AS k_refusal,
                   CASE WHEN i.token_hash IS NULL THEN i.token_run_id ELSE k.run_id END AS k_run,
                   CASE WHEN i.token_hash IS NULL THEN NULL
                        WHEN k.run_id IS NULL OR k.refusal IS NOT NULL THEN 'unauthorized'
                        WHEN k.thread_id <> i.thread_id THEN 'forbidden' END AS refused
            FROM items i
            LEFT JOIN LATERAL (
                SELECT * FROM terragon_daemon_token(decode(i.token_hash, 'hex')) LIMIT 1) k ON true
        ), context AS (
            -- The context, one snapshot: the (thread, chat) pointer; the frozen strict flag (the
            -- active run's, or with no active run the token's run's); the state of the token's
            -- run, the only run the envelope can be for (rule 3).
            -- Every lookup a LATERAL … LIMIT 1: one index probe per envelope, whatever the
            -- batch's size (the plan is generic: joined, a batch estimated at 100 rows made
            -- PostgreSQL hash whole tables).
            SELECT n.*, t.user_id AS c_user, t.repo_full_name AS c_repo, t.repo_dir AS c_dir,
                   COALESCE(a.sandbox_provider, t.sandbox_provider) AS c_provider,
                   COALESCE(a.codesandbox_id, t.codesandbox_id) AS c_sandbox,
                   c.active_run_id AS c_active,
                   COALESCE(a.frozen_daemon_run_id_strict, tr.frozen_daemon_run_id_strict,
                            false) AS c_strict,
                   a.run_start_sha AS c_start_sha, tr.thread_chat_id AS r_chat,
                   tr.status IN ('finished', 'failed') AS r_ended,
                   tr.daemon_payload_version AS r_version, tr.last_accepted_seq AS r_last_seq,
                   tr.status AS r_status, tr.recorded AS r_recorded,
                   row_number() OVER (PARTITION BY n.k_run ORDER BY n.ord)::integer AS nth
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
                SELECT a.sandbox_provider, a.codesandbox_id, a.frozen_daemon_run_id_strict,
                       a.run_start_sha
                FROM thread_run a WHERE a.run_id = c.active_run_id LIMIT 1
            ) a ON true
            LEFT JOIN LATERAL (
                SELECT tr.thread_chat_id, tr.status, tr.daemon_payload_version,
                       tr.last_accepted_seq, tr.frozen_daemon_run_id_strict,
                       EXISTS (SELECT 1 FROM daemon_event d
                               WHERE d.run_id = tr.run_id AND d.event_id = n.dedupe_id) AS recorded
                FROM thread_run tr WHERE t.thread_id IS NOT NULL AND tr.run_id = n.k_run LIMIT 1
            ) tr ON true
        ), checked AS (
            -- Rule 3, runId, its first part: a token authenticates only its own run's envelopes.
            -- strict=true: missing → missing_run_id. strict=false: missing → a legacy envelope for
            -- the active run, but only from that run's own daemon: under a superseded run's
            -- token, or with no active run, it is an old run's, never applied to another run.
            -- Given and not the token's run → mismatch, even when it names the active run.
            SELECT x.*, ok.run_id_ok,
                   ok.run_id_ok AND x.r_ended AND x.r_chat = x.thread_chat_id AS ended_here
            FROM context x, LATERAL (SELECT
                x.refused IS NULL
                AND NOT (x.run_id IS NULL AND (x.c_strict OR x.c_active IS NULL
                                               OR x.c_active IS DISTINCT FROM x.k_run))
                AND NOT (x.run_id IS NOT NULL AND x.run_id IS DISTINCT FROM x.k_run) AS run_id_ok
            ) ok
        ), ruled AS (
            -- Then the runId rule's end: nothing is applied to an ended run: the verdict's first
            -- rule answers for it (duplicate / stale_seq where it repeats what was accepted, else
            -- mismatch), from this snapshot (an ended run's state no longer changes), before the
            -- field limits. Last, a run that is not the active one → mismatch. Then the field
            -- limits (CONTRACT §4) and messages PostgreSQL cannot store: kept as a quarantine row,
            -- never bound or indexed (a 5xx would have the daemon retry it forever).
            SELECT x.*,
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
                   x.run_id_ok AND x.run_id IS NULL AS is_legacy,
                   terragon_envelope_verdict(
                       false, x.r_version, x.r_last_seq, x.r_recorded, x.payload_version,
                       x.fields_valid, x.seq, x.terminal, x.end_sha) AS verdict
            FROM checked x
        )
        SELECT r.*,
               CASE
                   WHEN r.early IS NOT NULL THEN r.early
                   -- 4 to 8 on the snapshot: a retry or a reordered envelope is answered without
                   -- the run lock and writes nothing.
                   WHEN r.verdict IN ('duplicate', 'stale_seq') THEN r.verdict
                   -- The first of its run in the batch (a later one's verdict may change once the
                   -- earlier ones are written: it asks under the lock).
                   WHEN r.verdict IS NULL AND (r.terminal OR r.is_legacy) AND NOT r.inputs_ready
                        AND r.nth = 1 THEN 'needs_inputs'
               END AS answer
        FROM ruled r
    LOOP
        IF s.legacy_row IS NOT NULL OR s.ui_outcome IS NOT NULL THEN
            RAISE EXCEPTION 'a legacy_mode row or UI outcome comes only with an envelope alone'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF s.answer IS NULL THEN
            v_pending := v_pending || s.ord;
            v_wave_of := v_wave_of || s.nth;
            v_runs := v_runs || s.k_run;
            CONTINUE;
        END IF;
        ordinal := s.ord;
        failed_sqlstate := NULL;
        outcome := s.answer;
        applied_messages := 0;
        legacy_row_id := NULL;
        IF s.refused IS NOT NULL THEN
            legacy := false;
            token_refusal := s.k_refusal;
            last_seq := NULL; run_status := NULL; token_run_id := NULL; user_id := NULL;
            repo_full_name := NULL; repo_dir := NULL; sandbox_provider := NULL;
            codesandbox_id := NULL; active_run_id := NULL; run_id_strict := NULL;
            run_start_sha := NULL;
            RETURN NEXT;
            CONTINUE;
        END IF;
        -- `legacy` once past the runId rule; last_seq once a verdict read the run's state.
        legacy := s.is_legacy;
        last_seq := CASE WHEN s.early IS NULL OR s.ended_here THEN s.r_last_seq END;
        run_status := s.r_status;
        token_run_id := s.k_run;
        token_refusal := NULL;
        user_id := s.c_user;
        repo_full_name := s.c_repo;
        repo_dir := s.c_dir;
        sandbox_provider := s.c_provider;
        codesandbox_id := s.c_sandbox;
        active_run_id := s.c_active;
        run_id_strict := s.c_strict;
        run_start_sha := s.c_start_sha;
        RETURN NEXT;
    END LOOP;
    IF cardinality(v_pending) = 0 THEN
        RETURN;
    END IF;

    -- 2. The run locks, one order for every batch.
    PERFORM 1 FROM thread_run WHERE run_id = ANY (v_runs) ORDER BY run_id FOR UPDATE;

    -- 3. Under the locks, a wave at a time: the decision and the apply, all or nothing: the
    -- messages (a message `uuid` at most once per run, one index probe per message:
    -- LATERAL … LIMIT 1 cannot become a hashed subplan over the whole run), the dedupe record,
    -- the run state (seq CAS, counters, status, the idempotent terminal transition keyed by
    -- terminal_event_id).
    FOR v_wave IN SELECT DISTINCT w FROM unnest(v_wave_of) AS w ORDER BY w LOOP
        RETURN QUERY
        WITH items AS (
            SELECT p_first + x.ordinality::integer - 1 AS ord, x.*
            FROM ROWS FROM (jsonb_to_recordset(p_batch) AS (
                token_run_id text, thread_id text, thread_chat_id text, run_id text,
                dedupe_id text, seq bigint, payload_version smallint, fields_valid boolean,
                messages jsonb, trace_id text, terminal boolean, failure boolean, end_sha text,
                inputs_ready boolean, diff_source text, diff_source_context text))
                 WITH ORDINALITY AS x
        ), wave AS (
            SELECT i.*, p.run AS k_run
            FROM unnest(v_pending, v_wave_of, v_runs) AS p(ord, w, run)
            JOIN items i ON i.ord = p.ord
            WHERE p.w = v_wave
        ), locked AS (
            SELECT w.*, r.run_id AS r_run, r.status AS r_status,
                   r.daemon_payload_version AS r_version, r.last_accepted_seq AS r_last_seq,
                   r.accepted_message_count AS r_count, r.terminal_event_id AS r_terminal_event,
                   r.frozen_daemon_run_id_strict AS r_strict, r.run_start_sha AS r_start_sha,
                   r.live, r.recorded,
                   t.user_id AS c_user, t.repo_full_name AS c_repo, t.repo_dir AS c_dir,
                   COALESCE(r.sandbox_provider, t.sandbox_provider) AS c_provider,
                   COALESCE(r.codesandbox_id, t.codesandbox_id) AS c_sandbox
            FROM wave w
            LEFT JOIN LATERAL (
                SELECT t.user_id, t.repo_full_name, t.repo_dir, t.sandbox_provider,
                       t.codesandbox_id
                FROM thread t WHERE t.thread_id = w.thread_id LIMIT 1
            ) t ON true
            LEFT JOIN LATERAL (
                SELECT r.run_id, r.status, r.daemon_payload_version, r.last_accepted_seq,
                       r.accepted_message_count, r.terminal_event_id,
                       r.frozen_daemon_run_id_strict, r.run_start_sha, r.sandbox_provider,
                       r.codesandbox_id,
                       EXISTS (SELECT 1 FROM thread_run_context c
                               WHERE c.thread_id = r.thread_id
                                 AND c.thread_chat_id = r.thread_chat_id
                                 AND c.active_run_id = r.run_id) AS live,
                       EXISTS (SELECT 1 FROM daemon_event d
                               WHERE d.run_id = r.run_id AND d.event_id = w.dedupe_id) AS recorded
                FROM thread_run r WHERE r.run_id = w.k_run LIMIT 1
            ) r ON true
        ), decided AS (
            SELECT l.*,
                   CASE
                       WHEN l.r_run IS NULL OR NOT l.live THEN 'mismatch'
                       ELSE COALESCE(
                           terragon_envelope_verdict(
                               l.r_status IN ('finished', 'failed'), l.r_version, l.r_last_seq,
                               l.recorded, l.payload_version, l.fields_valid, l.seq, l.terminal,
                               l.end_sha),
                           CASE WHEN (l.terminal OR l.run_id IS NULL) AND NOT l.inputs_ready
                                THEN 'needs_inputs' END)
                   END AS answer,
                   l.terminal AND l.r_terminal_event IS NULL
                       AND l.r_status IN ('booting', 'running', 'validating') AS ends_run
            FROM locked l
        ), applying AS (
            SELECT * FROM decided WHERE answer IS NULL
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
            SELECT a.*, COALESCE((SELECT count(*) FROM kept k WHERE k.ord = a.ord), 0)::integer
                        AS applied_n
            FROM applying a
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
        SELECT d.ord, NULL::text, COALESCE(d.answer, 'applied'), d.run_id IS NULL,
               COALESCE(u.applied_n, 0),
               CASE WHEN u.ord IS NOT NULL THEN u.u_last_seq ELSE d.r_last_seq END,
               CASE WHEN u.ord IS NOT NULL THEN u.u_status ELSE d.r_status END,
               NULL::uuid, d.k_run, d.c_user, d.c_repo, d.c_dir, d.c_provider, d.c_sandbox,
               d.k_run, d.r_strict, d.r_start_sha, NULL::text
        FROM decided d
        LEFT JOIN updated u ON u.ord = d.ord;
    END LOOP;
END;
$$;
