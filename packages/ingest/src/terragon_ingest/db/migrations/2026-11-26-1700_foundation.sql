-- Foundation schema: threads, runs and their pointer, daemon tokens, the accepted-event ledger,
-- accepted messages, quarantine and preview events (partitioned by day), UI validation, flags.
-- Never edit this file once landed: add a new migration instead (see CONTRIBUTING.md).

CREATE TABLE thread (
    thread_id        text PRIMARY KEY,
    user_id          text NOT NULL,
    repo_full_name   text NOT NULL,
    sandbox_provider text NOT NULL
        CHECK (sandbox_provider IN ('daytona', 'e2b', 'docker', 'local', 'manual')),
    codesandbox_id   text NOT NULL,
    repo_dir         text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- One row per run: the immutable facts (who, when, frozen flags) plus the run's own state.
CREATE TABLE thread_run (
    run_id                      text PRIMARY KEY,
    thread_id                   text NOT NULL REFERENCES thread (thread_id),
    thread_chat_id              text NOT NULL,
    start_request_id            text NOT NULL,
    trigger_source              text NOT NULL
        CHECK (trigger_source IN ('ui', 'retry', 'follow_up_queue', 'scheduled', 'slash_command', 'system')),
    status                      text NOT NULL DEFAULT 'booting'
        CHECK (status IN ('booting', 'running', 'validating', 'finished', 'failed')),
    frozen_sandbox_preview      boolean NOT NULL,
    frozen_daemon_run_id_strict boolean NOT NULL,
    frozen_rollout_phase        integer,
    codesandbox_id              text,
    sandbox_provider            text,
    daemon_payload_version      smallint CHECK (daemon_payload_version IN (1, 2)),
    last_accepted_seq           bigint,
    run_start_sha               text,
    run_end_sha                 text,
    diff_source                 text CHECK (diff_source IN ('sha', 'working-tree-fallback')),
    diff_source_context         text,
    terminal_event_id           text,
    finish_reason               text,
    accepted_event_count        integer NOT NULL DEFAULT 0,
    accepted_message_count      integer NOT NULL DEFAULT 0,
    last_event_at               timestamptz,
    missing_end_sha_at          timestamptz,
    started_at                  timestamptz NOT NULL DEFAULT now(),
    ended_at                    timestamptz,
    CONSTRAINT thread_run_start_request_key UNIQUE (thread_id, thread_chat_id, start_request_id)
);

-- At most one active run per (thread, chat): the database, not the code, guarantees it.
CREATE UNIQUE INDEX thread_run_one_active
    ON thread_run (thread_id, thread_chat_id)
    WHERE status IN ('booting', 'running', 'validating');
CREATE INDEX thread_run_active_last_event
    ON thread_run (last_event_at)
    WHERE status IN ('booting', 'running', 'validating');

-- The pointer: which run is active for a (thread, chat). Moved only by compare-and-swap on version.
CREATE TABLE thread_run_context (
    thread_id      text NOT NULL REFERENCES thread (thread_id),
    thread_chat_id text NOT NULL,
    active_run_id  text REFERENCES thread_run (run_id),
    version        bigint NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (thread_id, thread_chat_id)
);

-- Daemon tokens are stored as sha256 digests; the plaintext is returned once at run start.
CREATE TABLE daemon_token (
    token_hash bytea PRIMARY KEY,
    thread_id  text NOT NULL REFERENCES thread (thread_id),
    user_id    text NOT NULL,
    run_id     text NOT NULL REFERENCES thread_run (run_id),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX daemon_token_thread ON daemon_token (thread_id);

-- The accepted-event ledger: the dedupe record. Inserted in the same transaction as the apply.
CREATE TABLE daemon_event (
    run_id          text NOT NULL REFERENCES thread_run (run_id),
    event_id        text NOT NULL,
    seq             bigint,
    payload_version smallint NOT NULL,
    message_count   integer NOT NULL,
    applied_count   integer NOT NULL,
    trace_id        text,
    accepted_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, event_id)
);

-- Accepted agent messages, in order. A message's own `uuid` is stored at most once per run.
CREATE TABLE run_message (
    run_id       text NOT NULL REFERENCES thread_run (run_id),
    ordinal      integer NOT NULL,
    event_id     text NOT NULL,
    message_uuid text,
    message_type text,
    message      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, ordinal)
);
CREATE UNIQUE INDEX run_message_uuid ON run_message (run_id, message_uuid)
    WHERE message_uuid IS NOT NULL;

-- Quarantined envelopes: data, not log lines. Partitioned by day so retention drops partitions.
CREATE TABLE daemon_event_quarantine (
    id                 uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at         timestamptz NOT NULL DEFAULT now(),
    thread_id          text NOT NULL,
    thread_chat_id     text NOT NULL,
    run_id             text,
    active_run_id      text,
    reason             text NOT NULL CHECK (reason IN ('missing_run_id', 'mismatch', 'legacy_mode',
                           'payload_version_mismatch', 'missing_end_sha', 'invalid_envelope')),
    payload_version    smallint,
    payload_hash       text NOT NULL,
    payload_size       integer NOT NULL,
    payload_prefix_2k  text NOT NULL,
    payload_object_key text,
    offload_skipped    boolean NOT NULL DEFAULT false,
    repo_full_name     text,
    user_id            text,
    sandbox_provider   text,
    event_id           text,
    seq                bigint,
    trace_id           text,
    replayed_at        timestamptz,
    replay_status      text,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE daemon_event_quarantine_default PARTITION OF daemon_event_quarantine DEFAULT;
CREATE INDEX daemon_event_quarantine_thread ON daemon_event_quarantine (thread_id, created_at);
CREATE INDEX daemon_event_quarantine_run ON daemon_event_quarantine (run_id) WHERE run_id IS NOT NULL;

-- Preview/observability events (CONTRACT §6), partitioned by day like quarantine.
CREATE TABLE preview_event (
    id                 uuid NOT NULL DEFAULT gen_random_uuid(),
    ts_server          timestamptz NOT NULL,
    schema_version     smallint NOT NULL,
    event_name         text NOT NULL,
    origin             text NOT NULL,
    trace_id           text NOT NULL,
    thread_id          text,
    thread_chat_id     text,
    run_id             text,
    codesandbox_id     text,
    sandbox_provider   text,
    preview_session_id text,
    user_id            text,
    proxy_req_id       text,
    properties         jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (id, ts_server)
) PARTITION BY RANGE (ts_server);
CREATE TABLE preview_event_default PARTITION OF preview_event DEFAULT;
CREATE INDEX preview_event_name_ts ON preview_event (event_name, ts_server);

CREATE TABLE thread_ui_validation (
    thread_id       text NOT NULL,
    thread_chat_id  text NOT NULL,
    latest_run_id   text NOT NULL REFERENCES thread_run (run_id),
    outcome         text NOT NULL CHECK (outcome IN ('not_required', 'pending', 'passed', 'failed',
                        'inconclusive', 'blocked')),
    blocking_reason text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (thread_id, thread_chat_id)
);

-- Flags: one global row per name plus optional per-repo / per-user overrides.
CREATE TABLE feature_flag (
    name       text NOT NULL CHECK (name IN ('sandboxPreview', 'daemonRunIdStrict')),
    scope      text NOT NULL CHECK (scope IN ('global', 'repo', 'user')),
    scope_key  text NOT NULL DEFAULT '',
    enabled    boolean NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, scope, scope_key)
);

-- Day partitions are created ahead by `terragon_ensure_day_partitions` (migrate + maintenance);
-- the DEFAULT partitions above only catch rows if that ever falls behind, so nothing is lost.
CREATE FUNCTION terragon_ensure_day_partitions(parent regclass, first_day date, days integer)
RETURNS integer
LANGUAGE plpgsql AS $$
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
$$;
