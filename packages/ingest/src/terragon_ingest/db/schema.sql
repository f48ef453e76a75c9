-- The schema at head, rendered by terragon_ingest.db.schema from a database migrated from
-- empty. Generated: do not edit; change a migration or a function file, then run
-- `uv run terragon migrate --write-schema`.

CREATE TABLE alert_state (
    rule text NOT NULL,
    dims_key text NOT NULL,
    dimensions jsonb NOT NULL,
    firing_since timestamp with time zone NOT NULL,
    notified_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE alert_state ADD CONSTRAINT alert_state_pkey PRIMARY KEY (rule, dims_key);

CREATE TABLE archive_watermark (
    dataset text NOT NULL,
    watermark timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE archive_watermark ADD CONSTRAINT archive_watermark_dataset_check CHECK ((dataset = ANY (ARRAY['quarantine'::text, 'preview_event'::text])));
ALTER TABLE archive_watermark ADD CONSTRAINT archive_watermark_pkey PRIMARY KEY (dataset);

CREATE TABLE daemon_event (
    run_id text NOT NULL,
    event_id text NOT NULL,
    seq bigint,
    payload_version smallint NOT NULL,
    message_count integer NOT NULL,
    applied_count integer NOT NULL,
    trace_id text,
    accepted_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE daemon_event ADD CONSTRAINT daemon_event_pkey PRIMARY KEY (run_id, event_id);
ALTER TABLE daemon_event ADD CONSTRAINT daemon_event_run_id_fkey FOREIGN KEY (run_id) REFERENCES thread_run(run_id);

CREATE TABLE daemon_event_quarantine (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    thread_id text NOT NULL,
    thread_chat_id text NOT NULL,
    run_id text,
    active_run_id text,
    reason text NOT NULL,
    payload_version smallint,
    payload_hash text NOT NULL,
    payload_size integer NOT NULL,
    payload_prefix_2k text NOT NULL,
    payload_object_key text,
    offload_skipped boolean NOT NULL DEFAULT false,
    repo_full_name text,
    user_id text,
    sandbox_provider text,
    event_id text,
    seq bigint,
    trace_id text,
    replayed_at timestamp with time zone,
    replay_status text,
    payload_inline text,
    token_run_id text,
    strict boolean
) PARTITION BY RANGE (created_at);
ALTER TABLE daemon_event_quarantine ADD CONSTRAINT daemon_event_quarantine_pkey PRIMARY KEY (id, created_at);
ALTER TABLE daemon_event_quarantine ADD CONSTRAINT daemon_event_quarantine_reason_check CHECK ((reason = ANY (ARRAY['missing_run_id'::text, 'mismatch'::text, 'legacy_mode'::text, 'payload_version_mismatch'::text, 'missing_end_sha'::text, 'invalid_envelope'::text])));
CREATE INDEX daemon_event_quarantine_object_key ON ONLY public.daemon_event_quarantine USING btree (payload_object_key) WHERE (payload_object_key IS NOT NULL);
CREATE INDEX daemon_event_quarantine_run ON ONLY public.daemon_event_quarantine USING btree (run_id) WHERE (run_id IS NOT NULL);
CREATE INDEX daemon_event_quarantine_thread ON ONLY public.daemon_event_quarantine USING btree (thread_id, created_at);

CREATE TABLE daemon_token (
    token_hash bytea NOT NULL,
    thread_id text NOT NULL,
    user_id text NOT NULL,
    run_id text NOT NULL,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    revoked_at timestamp with time zone
);
ALTER TABLE daemon_token ADD CONSTRAINT daemon_token_pkey PRIMARY KEY (token_hash);
ALTER TABLE daemon_token ADD CONSTRAINT daemon_token_run_id_fkey FOREIGN KEY (run_id) REFERENCES thread_run(run_id);
ALTER TABLE daemon_token ADD CONSTRAINT daemon_token_thread_id_fkey FOREIGN KEY (thread_id) REFERENCES thread(thread_id);
CREATE INDEX daemon_token_thread ON public.daemon_token USING btree (thread_id);

CREATE TABLE feature_flag (
    name text NOT NULL,
    scope text NOT NULL,
    scope_key text NOT NULL DEFAULT ''::text,
    enabled boolean NOT NULL,
    updated_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE feature_flag ADD CONSTRAINT feature_flag_name_check CHECK ((name = ANY (ARRAY['sandboxPreview'::text, 'daemonRunIdStrict'::text])));
ALTER TABLE feature_flag ADD CONSTRAINT feature_flag_pkey PRIMARY KEY (name, scope, scope_key);
ALTER TABLE feature_flag ADD CONSTRAINT feature_flag_scope_check CHECK ((scope = ANY (ARRAY['global'::text, 'repo'::text, 'user'::text])));

CREATE TABLE github_account (
    user_id text NOT NULL,
    github_login text NOT NULL,
    updated_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE github_account ADD CONSTRAINT github_account_pkey PRIMARY KEY (user_id);
CREATE UNIQUE INDEX github_account_login ON public.github_account USING btree (lower(github_login));

CREATE TABLE github_repo (
    repo_full_name text NOT NULL,
    visibility text NOT NULL,
    updated_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE github_repo ADD CONSTRAINT github_repo_pkey PRIMARY KEY (repo_full_name);
ALTER TABLE github_repo ADD CONSTRAINT github_repo_visibility_check CHECK ((visibility = ANY (ARRAY['public'::text, 'private'::text, 'internal'::text])));

CREATE TABLE github_repo_collaborator (
    repo_full_name text NOT NULL,
    github_login text NOT NULL,
    updated_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE github_repo_collaborator ADD CONSTRAINT github_repo_collaborator_pkey PRIMARY KEY (repo_full_name, github_login);
CREATE INDEX github_repo_collaborator_login ON public.github_repo_collaborator USING btree (github_login);

CREATE TABLE github_team (
    team_id text NOT NULL,
    org text NOT NULL,
    slug text NOT NULL,
    updated_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE github_team ADD CONSTRAINT github_team_pkey PRIMARY KEY (team_id);

CREATE TABLE github_team_member (
    team_id text NOT NULL,
    github_login text NOT NULL,
    updated_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE github_team_member ADD CONSTRAINT github_team_member_pkey PRIMARY KEY (team_id, github_login);
CREATE INDEX github_team_member_login ON public.github_team_member USING btree (github_login);

CREATE TABLE github_team_repo (
    team_id text NOT NULL,
    repo_full_name text NOT NULL,
    updated_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE github_team_repo ADD CONSTRAINT github_team_repo_pkey PRIMARY KEY (team_id, repo_full_name);
CREATE INDEX github_team_repo_repo ON public.github_team_repo USING btree (repo_full_name);

CREATE TABLE github_webhook_delivery (
    delivery_id text NOT NULL,
    event text NOT NULL,
    action text,
    targets jsonb NOT NULL DEFAULT '[]'::jsonb,
    received_at timestamp with time zone NOT NULL DEFAULT now(),
    invalidated_at timestamp with time zone
);
ALTER TABLE github_webhook_delivery ADD CONSTRAINT github_webhook_delivery_pkey PRIMARY KEY (delivery_id);

CREATE TABLE preview_event (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    ts_server timestamp with time zone NOT NULL,
    schema_version smallint NOT NULL,
    event_name text NOT NULL,
    origin text NOT NULL,
    trace_id text NOT NULL,
    thread_id text,
    thread_chat_id text,
    run_id text,
    codesandbox_id text,
    sandbox_provider text,
    preview_session_id text,
    user_id text,
    proxy_req_id text,
    properties jsonb NOT NULL DEFAULT '{}'::jsonb
) PARTITION BY RANGE (ts_server);
ALTER TABLE preview_event ADD CONSTRAINT preview_event_pkey PRIMARY KEY (id, ts_server);
CREATE INDEX preview_event_name_ts ON ONLY public.preview_event USING btree (event_name, ts_server);

CREATE TABLE preview_session (
    preview_session_id text NOT NULL,
    thread_id text NOT NULL,
    thread_chat_id text NOT NULL,
    run_id text NOT NULL,
    user_id text NOT NULL,
    repo_full_name text NOT NULL,
    upstream_origin text NOT NULL,
    codesandbox_id text,
    sandbox_provider text,
    revocation_version integer NOT NULL DEFAULT 1,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    expires_at timestamp with time zone NOT NULL,
    revoked_at timestamp with time zone
);
ALTER TABLE preview_session ADD CONSTRAINT preview_session_pkey PRIMARY KEY (preview_session_id);
ALTER TABLE preview_session ADD CONSTRAINT preview_session_run_id_fkey FOREIGN KEY (run_id) REFERENCES thread_run(run_id);
ALTER TABLE preview_session ADD CONSTRAINT preview_session_thread_id_fkey FOREIGN KEY (thread_id) REFERENCES thread(thread_id);
CREATE INDEX preview_session_run ON public.preview_session USING btree (run_id);
CREATE INDEX preview_session_user_repo ON public.preview_session USING btree (user_id, repo_full_name);

CREATE TABLE run_message (
    run_id text NOT NULL,
    ordinal integer NOT NULL,
    event_id text NOT NULL,
    message_uuid text,
    message_type text,
    message jsonb NOT NULL,
    created_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE run_message ADD CONSTRAINT run_message_pkey PRIMARY KEY (run_id, ordinal);
ALTER TABLE run_message ADD CONSTRAINT run_message_run_id_fkey FOREIGN KEY (run_id) REFERENCES thread_run(run_id);
CREATE UNIQUE INDEX run_message_uuid ON public.run_message USING btree (run_id, message_uuid) WHERE (message_uuid IS NOT NULL);

CREATE TABLE schema_function (
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE schema_function ADD CONSTRAINT schema_function_pkey PRIMARY KEY (name);

CREATE TABLE schema_migration (
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE schema_migration ADD CONSTRAINT schema_migration_pkey PRIMARY KEY (name);

CREATE TABLE thread (
    thread_id text NOT NULL,
    user_id text NOT NULL,
    repo_full_name text NOT NULL,
    sandbox_provider text NOT NULL,
    codesandbox_id text NOT NULL,
    repo_dir text,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    updated_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE thread ADD CONSTRAINT thread_pkey PRIMARY KEY (thread_id);
ALTER TABLE thread ADD CONSTRAINT thread_sandbox_provider_check CHECK ((sandbox_provider = ANY (ARRAY['daytona'::text, 'e2b'::text, 'docker'::text, 'local'::text, 'manual'::text])));

CREATE TABLE thread_run (
    run_id text NOT NULL,
    thread_id text NOT NULL,
    thread_chat_id text NOT NULL,
    start_request_id text NOT NULL,
    trigger_source text NOT NULL,
    status text NOT NULL DEFAULT 'booting'::text,
    frozen_sandbox_preview boolean NOT NULL,
    frozen_daemon_run_id_strict boolean NOT NULL,
    frozen_rollout_phase integer,
    codesandbox_id text,
    sandbox_provider text,
    daemon_payload_version smallint,
    last_accepted_seq bigint,
    run_start_sha text,
    run_end_sha text,
    diff_source text,
    diff_source_context text,
    terminal_event_id text,
    finish_reason text,
    accepted_event_count integer NOT NULL DEFAULT 0,
    accepted_message_count integer NOT NULL DEFAULT 0,
    last_event_at timestamp with time zone,
    missing_end_sha_at timestamp with time zone,
    started_at timestamp with time zone NOT NULL DEFAULT now(),
    ended_at timestamp with time zone
);
ALTER TABLE thread_run ADD CONSTRAINT thread_run_daemon_payload_version_check CHECK ((daemon_payload_version = ANY (ARRAY[1, 2])));
ALTER TABLE thread_run ADD CONSTRAINT thread_run_diff_source_check CHECK ((diff_source = ANY (ARRAY['sha'::text, 'working-tree-fallback'::text])));
ALTER TABLE thread_run ADD CONSTRAINT thread_run_pkey PRIMARY KEY (run_id);
ALTER TABLE thread_run ADD CONSTRAINT thread_run_start_request_key UNIQUE (thread_id, thread_chat_id, start_request_id);
ALTER TABLE thread_run ADD CONSTRAINT thread_run_status_check CHECK ((status = ANY (ARRAY['booting'::text, 'running'::text, 'validating'::text, 'finished'::text, 'failed'::text])));
ALTER TABLE thread_run ADD CONSTRAINT thread_run_thread_id_fkey FOREIGN KEY (thread_id) REFERENCES thread(thread_id);
ALTER TABLE thread_run ADD CONSTRAINT thread_run_trigger_source_check CHECK ((trigger_source = ANY (ARRAY['ui'::text, 'retry'::text, 'follow_up_queue'::text, 'scheduled'::text, 'slash_command'::text, 'system'::text])));
CREATE INDEX thread_run_active_last_event ON public.thread_run USING btree (last_event_at) WHERE (status = ANY (ARRAY['booting'::text, 'running'::text, 'validating'::text]));
CREATE INDEX thread_run_active_missing_end_sha ON public.thread_run USING btree (missing_end_sha_at) WHERE ((status = ANY (ARRAY['booting'::text, 'running'::text, 'validating'::text])) AND (missing_end_sha_at IS NOT NULL));
CREATE UNIQUE INDEX thread_run_one_active ON public.thread_run USING btree (thread_id, thread_chat_id) WHERE (status = ANY (ARRAY['booting'::text, 'running'::text, 'validating'::text]));

CREATE TABLE thread_run_context (
    thread_id text NOT NULL,
    thread_chat_id text NOT NULL,
    active_run_id text,
    version bigint NOT NULL DEFAULT 0,
    updated_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE thread_run_context ADD CONSTRAINT thread_run_context_active_run_id_fkey FOREIGN KEY (active_run_id) REFERENCES thread_run(run_id);
ALTER TABLE thread_run_context ADD CONSTRAINT thread_run_context_pkey PRIMARY KEY (thread_id, thread_chat_id);
ALTER TABLE thread_run_context ADD CONSTRAINT thread_run_context_thread_id_fkey FOREIGN KEY (thread_id) REFERENCES thread(thread_id);

CREATE TABLE thread_ui_validation (
    thread_id text NOT NULL,
    thread_chat_id text NOT NULL,
    latest_run_id text NOT NULL,
    outcome text NOT NULL,
    blocking_reason text,
    updated_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE thread_ui_validation ADD CONSTRAINT thread_ui_validation_latest_run_id_fkey FOREIGN KEY (latest_run_id) REFERENCES thread_run(run_id);
ALTER TABLE thread_ui_validation ADD CONSTRAINT thread_ui_validation_outcome_check CHECK ((outcome = ANY (ARRAY['not_required'::text, 'pending'::text, 'passed'::text, 'failed'::text, 'inconclusive'::text, 'blocked'::text])));
ALTER TABLE thread_ui_validation ADD CONSTRAINT thread_ui_validation_pkey PRIMARY KEY (thread_id, thread_chat_id);

CREATE TABLE daemon_event_quarantine_default PARTITION OF daemon_event_quarantine DEFAULT;
CREATE TABLE preview_event_default PARTITION OF preview_event DEFAULT;

CREATE OR REPLACE FUNCTION public.terragon_ensure_day_partitions(parent regclass, first_day date, days integer)
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
    day date;
    name text;
    created integer := 0;
BEGIN
    FOR i IN 0 .. days - 1 LOOP
        day := first_day + i;
        name := parent::text || '_p' || to_char(day, 'YYYYMMDD');
        IF to_regclass(name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                name, parent, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC'
            );
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END;
$function$;

CREATE OR REPLACE FUNCTION public.terragon_envelope_verdict(run_payload_version smallint, run_last_seq bigint, recorded boolean, payload_version smallint, fields_valid boolean, seq bigint, terminal boolean, end_sha text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
    SELECT CASE
        -- 4. the first accepted envelope fixed the run's payload version
        WHEN run_payload_version IS NOT NULL AND run_payload_version <> payload_version
            THEN 'payload_version_mismatch'
        -- 5. v2 carries eventId and a positive seq
        WHEN payload_version = 2 AND NOT fields_valid THEN 'invalid_envelope'
        -- 6. the eventId is already recorded for the run
        WHEN recorded THEN 'duplicate'
        -- 7. seq not greater than the last accepted seq
        WHEN seq IS NOT NULL AND run_last_seq IS NOT NULL AND seq <= run_last_seq THEN 'stale_seq'
        -- 8. a terminal v2 envelope carries endSha
        WHEN terminal AND payload_version = 2 AND end_sha IS NULL THEN 'missing_end_sha'
    END
$function$;

CREATE OR REPLACE FUNCTION public.terragon_ingest_envelope(p_token_hash bytea, p_token_run_id text, p_thread_id text, p_thread_chat_id text, p_run_id text, p_dedupe_id text, p_seq bigint, p_payload_version smallint, p_fields_valid boolean, p_within_limits boolean, p_messages jsonb, p_trace_id text, p_terminal boolean, p_failure boolean, p_end_sha text, p_inputs_ready boolean, p_diff_source text, p_diff_source_context text, p_legacy_row jsonb, p_ui_outcome text, p_ui_blocking_reason text, OUT outcome text, OUT legacy boolean, OUT applied_messages integer, OUT last_seq bigint, OUT run_status text, OUT legacy_row_id uuid, OUT token_run_id text, OUT user_id text, OUT repo_full_name text, OUT repo_dir text, OUT sandbox_provider text, OUT codesandbox_id text, OUT active_run_id text, OUT run_id_strict boolean, OUT run_start_sha text)
 RETURNS record
 LANGUAGE plpgsql
AS $function$
#variable_conflict use_column
DECLARE
    v_token_thread text;
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
    -- body too; this is the authority), and the thread it is bound to (403).
    IF p_token_hash IS NULL THEN
        token_run_id := p_token_run_id;
    ELSE
        SELECT k.thread_id, k.run_id INTO v_token_thread, token_run_id
        FROM daemon_token k WHERE k.token_hash = p_token_hash AND k.revoked_at IS NULL;
        IF NOT FOUND THEN
            outcome := 'unauthorized';
            RETURN;
        END IF;
        IF v_token_thread <> p_thread_id THEN
            outcome := 'forbidden';
            RETURN;
        END IF;
    END IF;
    -- 2. body shape: decided by the decoder before this call.

    -- The context, one snapshot: the (thread, chat) pointer; the frozen strict flag (the active
    -- run's, or with no active run the token's run's); the active run's state for rules 4 to 8.
    SELECT t.user_id, t.repo_full_name, t.repo_dir,
           COALESCE(a.sandbox_provider, t.sandbox_provider),
           COALESCE(a.codesandbox_id, t.codesandbox_id),
           c.active_run_id,
           COALESCE(a.frozen_daemon_run_id_strict, tr.frozen_daemon_run_id_strict, false),
           a.run_start_sha, a.daemon_payload_version, a.last_accepted_seq, a.status,
           EXISTS (SELECT 1 FROM daemon_event e
                   WHERE e.run_id = c.active_run_id AND e.event_id = p_dedupe_id)
    INTO user_id, repo_full_name, repo_dir, sandbox_provider, codesandbox_id, active_run_id,
         run_id_strict, run_start_sha, v_version, v_last_seq, run_status, v_recorded
    FROM thread t
    LEFT JOIN thread_run_context c
           ON c.thread_id = t.thread_id AND c.thread_chat_id = p_thread_chat_id
    LEFT JOIN thread_run a ON a.run_id = c.active_run_id
    LEFT JOIN thread_run tr ON tr.run_id = token_run_id
    WHERE t.thread_id = p_thread_id;
    run_id_strict := COALESCE(run_id_strict, false);

    -- 3. runId. strict=true: missing → missing_run_id. strict=false: missing → a legacy envelope
    -- for the active run, but only from that run's own daemon: under a superseded run's token, or
    -- with no active run, it is an old run's, never applied to another run. Given and not the
    -- active run → mismatch.
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
    ELSIF active_run_id IS NULL OR p_run_id <> active_run_id THEN
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
        v_version, v_last_seq, v_recorded, p_payload_version, p_fields_valid, p_seq, p_terminal,
        p_end_sha);
    IF v_verdict IN ('duplicate', 'stale_seq') THEN
        outcome := v_verdict;
        RETURN;
    END IF;
    IF v_verdict IS NULL AND (p_terminal OR legacy) AND NOT p_inputs_ready THEN
        outcome := 'needs_inputs';
        RETURN;
    END IF;

    -- Under the run lock (every envelope of one run in turn): the pointer again (rule 3: it may
    -- have moved since the snapshot), then rules 4 to 8 for good.
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
        r.daemon_payload_version, r.last_accepted_seq,
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
$function$;

CREATE OR REPLACE FUNCTION public.terragon_ingest_envelopes(p_batch jsonb)
 RETURNS TABLE(ordinal integer, failed_sqlstate text, outcome text, legacy boolean, applied_messages integer, last_seq bigint, run_status text, legacy_row_id uuid, token_run_id text, user_id text, repo_full_name text, repo_dir text, sandbox_provider text, codesandbox_id text, active_run_id text, run_id_strict boolean, run_start_sha text)
 LANGUAGE plpgsql
AS $function$
DECLARE
    e jsonb;
    i integer;
BEGIN
    FOR e, i IN SELECT b.value, b.idx::integer - 1
                FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS b(value, idx) LOOP
        BEGIN
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
        EXCEPTION WHEN OTHERS THEN
            RETURN QUERY SELECT i, SQLSTATE, NULL::text, NULL::boolean, NULL::integer,
                NULL::bigint, NULL::text, NULL::uuid, NULL::text, NULL::text, NULL::text,
                NULL::text, NULL::text, NULL::text, NULL::text, NULL::boolean, NULL::text;
        END;
    END LOOP;
END;
$function$;

CREATE OR REPLACE FUNCTION public.terragon_insert_quarantine(p_row jsonb)
 RETURNS uuid
 LANGUAGE sql
AS $function$
    INSERT INTO daemon_event_quarantine
    SELECT * FROM jsonb_populate_record(
        NULL::daemon_event_quarantine,
        jsonb_build_object('id', gen_random_uuid(), 'created_at', now(), 'offload_skipped', false)
        || jsonb_strip_nulls(p_row))
    RETURNING id
$function$;
