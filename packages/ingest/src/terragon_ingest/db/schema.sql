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

CREATE TABLE archive_day_seal (
    dataset text NOT NULL,
    day date NOT NULL,
    partition_oid oid NOT NULL,
    rows bigint NOT NULL,
    breakdown jsonb NOT NULL,
    fingerprint text NOT NULL,
    sealed_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE archive_day_seal ADD CONSTRAINT archive_day_seal_dataset_check CHECK ((dataset = ANY (ARRAY['quarantine'::text, 'preview_event'::text])));
ALTER TABLE archive_day_seal ADD CONSTRAINT archive_day_seal_partition_oid_key UNIQUE (partition_oid);
ALTER TABLE archive_day_seal ADD CONSTRAINT archive_day_seal_pkey PRIMARY KEY (dataset, day);

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
CREATE INDEX daemon_event_quarantine_created_brin ON ONLY public.daemon_event_quarantine USING brin (created_at) WITH (pages_per_range='32', autosummarize='on');
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
CREATE UNIQUE INDEX github_account_login ON public.github_account USING btree (lower((github_login COLLATE "C")));

CREATE TABLE github_repo (
    repo_full_name text NOT NULL,
    visibility text NOT NULL,
    updated_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE github_repo ADD CONSTRAINT github_repo_pkey PRIMARY KEY (repo_full_name);
ALTER TABLE github_repo ADD CONSTRAINT github_repo_repo_full_name_folded CHECK ((repo_full_name = lower((repo_full_name COLLATE "C"))));
ALTER TABLE github_repo ADD CONSTRAINT github_repo_visibility_check CHECK ((visibility = ANY (ARRAY['public'::text, 'private'::text, 'internal'::text])));

CREATE TABLE github_repo_collaborator (
    repo_full_name text NOT NULL,
    github_login text NOT NULL,
    updated_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE github_repo_collaborator ADD CONSTRAINT github_repo_collaborator_names_folded CHECK (((repo_full_name = lower((repo_full_name COLLATE "C"))) AND (github_login = lower((github_login COLLATE "C")))));
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
ALTER TABLE github_team_member ADD CONSTRAINT github_team_member_login_folded CHECK ((github_login = lower((github_login COLLATE "C"))));
ALTER TABLE github_team_member ADD CONSTRAINT github_team_member_pkey PRIMARY KEY (team_id, github_login);
CREATE INDEX github_team_member_login ON public.github_team_member USING btree (github_login);

CREATE TABLE github_team_repo (
    team_id text NOT NULL,
    repo_full_name text NOT NULL,
    updated_at timestamp with time zone NOT NULL DEFAULT now()
);
ALTER TABLE github_team_repo ADD CONSTRAINT github_team_repo_pkey PRIMARY KEY (team_id, repo_full_name);
ALTER TABLE github_team_repo ADD CONSTRAINT github_team_repo_repo_folded CHECK ((repo_full_name = lower((repo_full_name COLLATE "C"))));
CREATE INDEX github_team_repo_repo ON public.github_team_repo USING btree (repo_full_name);

CREATE TABLE github_webhook_delivery (
    delivery_id text NOT NULL,
    event text NOT NULL,
    action text,
    targets jsonb NOT NULL DEFAULT '[]'::jsonb,
    received_at timestamp with time zone NOT NULL DEFAULT now(),
    invalidated_at timestamp with time zone,
    body_sha256 bytea NOT NULL
);
ALTER TABLE github_webhook_delivery ADD CONSTRAINT github_webhook_delivery_body_sha256_check CHECK ((octet_length(body_sha256) = 32));
ALTER TABLE github_webhook_delivery ADD CONSTRAINT github_webhook_delivery_delivery_id_key UNIQUE (delivery_id);
ALTER TABLE github_webhook_delivery ADD CONSTRAINT github_webhook_delivery_pkey PRIMARY KEY (body_sha256);
CREATE INDEX github_webhook_delivery_received_at ON public.github_webhook_delivery USING btree (received_at);

CREATE TABLE job_slot (
    job text NOT NULL,
    slot_start timestamp with time zone NOT NULL,
    claimed_by text NOT NULL,
    claimed_at timestamp with time zone NOT NULL DEFAULT now(),
    finished_at timestamp with time zone,
    failed boolean
);
ALTER TABLE job_slot ADD CONSTRAINT job_slot_pkey PRIMARY KEY (job, slot_start);

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
CREATE INDEX preview_event_ts_brin ON ONLY public.preview_event USING brin (ts_server) WITH (pages_per_range='32', autosummarize='on');

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
CREATE INDEX thread_user_repo_folded ON public.thread USING btree (user_id, lower((repo_full_name COLLATE "C")));

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
) WITH (fillfactor=50);
ALTER TABLE thread_run ADD CONSTRAINT thread_run_daemon_payload_version_check CHECK ((daemon_payload_version = ANY (ARRAY[1, 2])));
ALTER TABLE thread_run ADD CONSTRAINT thread_run_diff_source_check CHECK ((diff_source = ANY (ARRAY['sha'::text, 'working-tree-fallback'::text])));
ALTER TABLE thread_run ADD CONSTRAINT thread_run_pkey PRIMARY KEY (run_id);
ALTER TABLE thread_run ADD CONSTRAINT thread_run_start_request_key UNIQUE (thread_id, thread_chat_id, start_request_id);
ALTER TABLE thread_run ADD CONSTRAINT thread_run_status_check CHECK ((status = ANY (ARRAY['booting'::text, 'running'::text, 'validating'::text, 'finished'::text, 'failed'::text])));
ALTER TABLE thread_run ADD CONSTRAINT thread_run_thread_id_fkey FOREIGN KEY (thread_id) REFERENCES thread(thread_id);
ALTER TABLE thread_run ADD CONSTRAINT thread_run_trigger_source_check CHECK ((trigger_source = ANY (ARRAY['ui'::text, 'retry'::text, 'follow_up_queue'::text, 'scheduled'::text, 'slash_command'::text, 'system'::text])));
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

-- FUNCTION terragon_break_day_seal()
--     RETURNS trigger
--     body: db/functions/terragon_break_day_seal.sql (definition md5 a3a0258fa6b8e21eee24dc73d2ae4e65)

-- FUNCTION terragon_daemon_token(p_token_hash bytea)
--     RETURNS TABLE(token_hash bytea, thread_id text, user_id text, run_id text, expires_at timestamp with time zone, refusal text)
--     body: db/functions/terragon_daemon_token.sql (definition md5 5d98ea86869922dfc401a96dbcccf691)

-- FUNCTION terragon_ensure_day_partitions(parent regclass, first_day date, days integer)
--     RETURNS integer
--     body: db/functions/terragon_ensure_day_partitions.sql (definition md5 172f6f6d9a26b3b74a12c03786cc4168)

-- FUNCTION terragon_envelope_verdict(run_ended boolean, run_payload_version smallint, run_last_seq bigint, recorded boolean, payload_version smallint, fields_valid boolean, seq bigint, terminal boolean, end_sha text)
--     RETURNS text
--     body: db/functions/terragon_envelope_verdict.sql (definition md5 8aee7bb460188af8726ce85eabd6637a)

-- FUNCTION terragon_ingest_envelope(p_token_hash bytea, p_token_run_id text, p_thread_id text, p_thread_chat_id text, p_run_id text, p_dedupe_id text, p_seq bigint, p_payload_version smallint, p_fields_valid boolean, p_within_limits boolean, p_messages jsonb, p_trace_id text, p_terminal boolean, p_failure boolean, p_end_sha text, p_inputs_ready boolean, p_diff_source text, p_diff_source_context text, p_legacy_row jsonb, p_ui_outcome text, p_ui_blocking_reason text, OUT outcome text, OUT legacy boolean, OUT applied_messages integer, OUT last_seq bigint, OUT run_status text, OUT legacy_row_id uuid, OUT token_run_id text, OUT user_id text, OUT repo_full_name text, OUT repo_dir text, OUT sandbox_provider text, OUT codesandbox_id text, OUT active_run_id text, OUT run_id_strict boolean, OUT run_start_sha text, OUT token_refusal text)
--     RETURNS record
--     body: db/functions/terragon_ingest_envelope.sql (definition md5 cfa1240623f364acc04099c47c0fde52)

-- FUNCTION terragon_ingest_envelopes(p_batch jsonb, p_isolated boolean, p_first integer)
--     RETURNS TABLE(ordinal integer, failed_sqlstate text, outcome text, legacy boolean, applied_messages integer, last_seq bigint, run_status text, legacy_row_id uuid, token_run_id text, user_id text, repo_full_name text, repo_dir text, sandbox_provider text, codesandbox_id text, active_run_id text, run_id_strict boolean, run_start_sha text, token_refusal text)
--     body: db/functions/terragon_ingest_envelopes.sql (definition md5 3dbd21e0662dcb07475ab8b4ef3022bd)

-- FUNCTION terragon_insert_quarantine(p_row jsonb)
--     RETURNS uuid
--     body: db/functions/terragon_insert_quarantine.sql (definition md5 f67737d7a31190e9605ffefe002860a2)

-- FUNCTION terragon_insert_quarantines(p_rows jsonb)
--     RETURNS SETOF uuid
--     body: db/functions/terragon_insert_quarantines.sql (definition md5 216c6b4f9d0d4e0c71a8cec0afb00c56)

-- FUNCTION terragon_record_quarantines(p_batch jsonb)
--     RETURNS TABLE(ordinal integer, denied text[])
--     body: db/functions/terragon_record_quarantines.sql (definition md5 2fdd620ecdb21f08bb7d6d2c4519530f)
