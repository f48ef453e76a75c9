-- Group commit: several envelopes decided and applied by one statement, one transaction, one
-- commit, each through the one decision (terragon_ingest_envelope) in the order given: two
-- envelopes of one run keep their order (the second sees the first's writes). Nothing is
-- answered before the whole statement has committed.
--
-- Two modes, so that one envelope's failure never changes another's answer:
-- - p_isolated = false (the service's first try): the envelopes one after the other with no
--   subtransaction (each costs PostgreSQL an XID, a savepoint and its bookkeeping: about a sixth
--   of a grouped envelope's database time, measured with pgbench on batches of 5). Any error fails
--   the whole statement and nothing of it is written;
-- - p_isolated = true (the service again, after such a failure): each envelope in its own
--   subtransaction, so a failing one rolls back its own effects only and comes back `failed` with
--   its SQLSTATE and nothing of it written: the service decides it again alone. The others are
--   decided exactly as in the first try (which wrote nothing).
--
-- p_batch: a JSON array of objects whose keys are terragon_ingest_envelope's parameter names
-- without `p_` (token_hash as hex). The caller orders it by (thread_id, thread_chat_id), arrival
-- order kept within one, so that concurrent batches take run locks in one order (no deadlock).
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
LANGUAGE plpgsql AS $$
DECLARE
    e jsonb;
    i integer;
BEGIN
    FOR e, i IN SELECT b.value, p_first + b.idx::integer - 1
                FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS b(value, idx) LOOP
        IF p_isolated THEN
            BEGIN
                RETURN QUERY SELECT * FROM terragon_ingest_envelopes(jsonb_build_array(e), false, i);
            EXCEPTION WHEN OTHERS THEN
                -- The failed row: its ordinal and SQLSTATE; every other column is never
                -- assigned here (RETURN QUERY does not set them), so NULL.
                ordinal := i;
                failed_sqlstate := SQLSTATE;
                RETURN NEXT;
            END;
            CONTINUE;
        END IF;
        RETURN QUERY
        SELECT i, NULL::text, x.*
        FROM terragon_ingest_envelope(
            p_token_hash => decode(e ->> 'token_hash', 'hex'),
            p_token_run_id => e ->> 'token_run_id',
            p_thread_id => e ->> 'thread_id',
            p_thread_chat_id => e ->> 'thread_chat_id',
            p_run_id => e ->> 'run_id',
            p_dedupe_id => e ->> 'dedupe_id',
            p_seq => (e ->> 'seq')::bigint,
            p_payload_version => (e ->> 'payload_version')::smallint,
            p_fields_valid => (e ->> 'fields_valid')::boolean,
            p_within_limits => (e ->> 'within_limits')::boolean,
            p_messages => e -> 'messages',
            p_trace_id => e ->> 'trace_id',
            p_terminal => (e ->> 'terminal')::boolean,
            p_failure => (e ->> 'failure')::boolean,
            p_end_sha => e ->> 'end_sha',
            p_inputs_ready => false,
            p_diff_source => NULL,
            p_diff_source_context => NULL,
            p_legacy_row => NULL,
            p_ui_outcome => NULL,
            p_ui_blocking_reason => NULL) AS x;
    END LOOP;
END;
$$;
