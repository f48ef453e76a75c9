-- name: upsert_thread
INSERT INTO thread (thread_id, user_id, repo_full_name, sandbox_provider, codesandbox_id, repo_dir)
VALUES (%(thread_id)s, %(user_id)s, %(repo_full_name)s, %(sandbox_provider)s, %(codesandbox_id)s, %(repo_dir)s)
ON CONFLICT (thread_id) DO UPDATE SET
    user_id = EXCLUDED.user_id,
    repo_full_name = EXCLUDED.repo_full_name,
    sandbox_provider = EXCLUDED.sandbox_provider,
    codesandbox_id = EXCLUDED.codesandbox_id,
    repo_dir = EXCLUDED.repo_dir,
    updated_at = now()
RETURNING thread_id, user_id, repo_full_name, sandbox_provider, codesandbox_id, repo_dir

-- name: fetch_thread
SELECT thread_id, user_id, repo_full_name, sandbox_provider, codesandbox_id, repo_dir
FROM thread WHERE thread_id = %(thread_id)s

-- name: ensure_run_context
INSERT INTO thread_run_context (thread_id, thread_chat_id)
VALUES (%(thread_id)s, %(thread_chat_id)s)
ON CONFLICT DO NOTHING

-- name: lock_run_context
SELECT active_run_id, version FROM thread_run_context
WHERE thread_id = %(thread_id)s AND thread_chat_id = %(thread_chat_id)s
FOR UPDATE

-- name: fetch_run_context
SELECT active_run_id, version FROM thread_run_context
WHERE thread_id = %(thread_id)s AND thread_chat_id = %(thread_chat_id)s

-- name: fetch_run_by_start_request
SELECT run_id FROM thread_run
WHERE thread_id = %(thread_id)s AND thread_chat_id = %(thread_chat_id)s
  AND start_request_id = %(start_request_id)s

-- name: supersede_active_runs
UPDATE thread_run
SET status = 'failed', finish_reason = 'superseded', ended_at = now()
WHERE thread_id = %(thread_id)s AND thread_chat_id = %(thread_chat_id)s
  AND status IN ('booting', 'running', 'validating')
RETURNING run_id

-- name: insert_run
INSERT INTO thread_run (
    run_id, thread_id, thread_chat_id, start_request_id, trigger_source,
    frozen_sandbox_preview, frozen_daemon_run_id_strict, frozen_rollout_phase
) VALUES (
    %(run_id)s, %(thread_id)s, %(thread_chat_id)s, %(start_request_id)s, %(trigger_source)s,
    %(sandbox_preview)s, %(daemon_run_id_strict)s, %(rollout_phase)s
)

-- name: move_run_context_pointer
UPDATE thread_run_context
SET active_run_id = %(run_id)s, version = version + 1, updated_at = now()
WHERE thread_id = %(thread_id)s AND thread_chat_id = %(thread_chat_id)s
  AND version = %(expected_version)s
RETURNING version

-- name: bind_run_sandbox
UPDATE thread_run
SET codesandbox_id = %(codesandbox_id)s, sandbox_provider = %(sandbox_provider)s,
    run_start_sha = COALESCE(run_start_sha, %(run_start_sha)s)
WHERE run_id = %(run_id)s AND status IN ('booting', 'running', 'validating')
RETURNING run_id

-- name: fetch_run
SELECT r.run_id, r.thread_id, r.thread_chat_id, r.status, r.daemon_payload_version,
       r.last_accepted_seq, r.run_start_sha, r.run_end_sha, r.diff_source, r.diff_source_context,
       r.terminal_event_id, r.frozen_sandbox_preview, r.frozen_daemon_run_id_strict,
       r.frozen_rollout_phase, r.accepted_event_count, r.accepted_message_count,
       r.started_at, r.ended_at, r.trigger_source, r.start_request_id, r.codesandbox_id,
       r.sandbox_provider, r.finish_reason
FROM thread_run r WHERE r.run_id = %(run_id)s

-- name: fetch_flag_rows
SELECT name, scope, enabled FROM feature_flag
WHERE scope = 'global'
   OR (scope = 'repo' AND scope_key = %(repo_full_name)s)
   OR (scope = 'user' AND scope_key = %(user_id)s)

-- name: upsert_flag
INSERT INTO feature_flag (name, scope, scope_key, enabled)
VALUES (%(name)s, %(scope)s, %(scope_key)s, %(enabled)s)
ON CONFLICT (name, scope, scope_key) DO UPDATE SET enabled = EXCLUDED.enabled, updated_at = now()

-- name: insert_daemon_token
INSERT INTO daemon_token (token_hash, thread_id, user_id, run_id)
VALUES (%(token_hash)s, %(thread_id)s, %(user_id)s, %(run_id)s)

-- name: fetch_daemon_token
-- The token check before the body is decoded: the same lifetime rules as the authority's
-- (db/functions/terragon_daemon_token.sql).
SELECT token_hash, thread_id, user_id, run_id, expires_at, refusal
FROM terragon_daemon_token(%(token_hash)s::bytea)

-- name: lock_thread_run_contexts
-- A close takes the thread's pointers first, in one order, as a run start does.
SELECT thread_chat_id FROM thread_run_context
WHERE thread_id = %(thread_id)s
ORDER BY thread_chat_id
FOR UPDATE

-- name: close_thread
-- CONTRACT §4: end the thread's live runs as failed / thread_closed, release its pointers (as the
-- backstop does: NULL and a new version) and revoke every token of the thread. Each UPDATE
-- re-checks its predicate, so a second close changes nothing.
WITH ended AS (
    UPDATE thread_run SET status = 'failed', finish_reason = %(finish_reason)s, ended_at = now()
    WHERE thread_id = %(thread_id)s AND status IN ('booting', 'running', 'validating')
    RETURNING run_id, started_at
), released AS (
    UPDATE thread_run_context c
    SET active_run_id = NULL, version = c.version + 1, updated_at = now()
    WHERE c.thread_id = %(thread_id)s AND c.active_run_id IS NOT NULL
    RETURNING c.thread_chat_id
), revoked AS (
    UPDATE daemon_token SET revoked_at = now()
    WHERE thread_id = %(thread_id)s AND revoked_at IS NULL
    RETURNING token_hash
)
SELECT (SELECT run_id FROM ended ORDER BY started_at DESC, run_id LIMIT 1) AS ended_run_id,
       (SELECT count(*) FROM ended)::int AS ended_runs,
       (SELECT count(*) FROM released)::int AS released_pointers,
       (SELECT count(*) FROM revoked)::int AS revoked_tokens

-- name: record_missing_end_sha
-- A terminal v2 envelope arrived without endSha (quarantined): start the backstop's grace window.
UPDATE thread_run SET missing_end_sha_at = COALESCE(missing_end_sha_at, now())
WHERE run_id = %(run_id)s AND status IN ('booting', 'running', 'validating')

-- name: finalize_stale_runs
-- The maintenance backstop (CONTRACT §4): non-terminal runs with no accepted envelope for the
-- stale window (started_at when none), or whose missing-endSha grace window passed, become
-- failed / missing_end_sha_timeout / working-tree-fallback and release the pointer. The status
-- predicate makes it exactly-once even without the sweep's advisory lock.
WITH due AS (
    SELECT run_id FROM thread_run
    WHERE status IN ('booting', 'running', 'validating')
      AND (COALESCE(last_event_at, started_at) < now() - %(stale_seconds)s * interval '1 second'
           OR missing_end_sha_at < now() - %(grace_seconds)s * interval '1 second')
    ORDER BY run_id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), finalized AS (
    UPDATE thread_run r SET
        status = 'failed',
        finish_reason = 'missing_end_sha_timeout',
        diff_source = 'working-tree-fallback',
        diff_source_context = CASE
            WHEN r.missing_end_sha_at IS NOT NULL
            THEN 'missing_end_sha_timeout: terminal envelope without endSha, grace window passed'
            ELSE 'missing_end_sha_timeout: no accepted envelope within the stale window' END,
        ended_at = now()
    FROM due WHERE r.run_id = due.run_id AND r.status IN ('booting', 'running', 'validating')
    RETURNING r.run_id, r.thread_id, r.thread_chat_id, r.codesandbox_id, r.sandbox_provider
), released AS (
    UPDATE thread_run_context c
    SET active_run_id = NULL, version = c.version + 1, updated_at = now()
    FROM finalized f
    WHERE c.thread_id = f.thread_id AND c.thread_chat_id = f.thread_chat_id
      AND c.active_run_id = f.run_id
    RETURNING c.active_run_id
)
SELECT f.run_id, f.thread_id, f.thread_chat_id, f.codesandbox_id, f.sandbox_provider,
       t.repo_full_name, t.user_id, (SELECT count(*) FROM released) AS released
FROM finalized f JOIN thread t ON t.thread_id = f.thread_id
