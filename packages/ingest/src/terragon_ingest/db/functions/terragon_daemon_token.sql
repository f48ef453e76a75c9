-- A daemon token by its sha256 digest (CONTRACT §4), the one place its lifetime is written: the
-- thread it binds, the run it was minted for, when it expires (NULL while its run has not ended),
-- and why it no longer authenticates, if it does not:
-- `revoked` (its thread was closed, or an operator revoked it) or `expired` (its run ended more
-- than an hour ago: terragon_core.DAEMON_TOKEN_GRACE_SECONDS; late retries within the hour still
-- get their final answer). No row: an unknown token.
--
-- Both token checks read it: the one before the body is decoded (runs/queries.sql,
-- fetch_daemon_token) and the authority (terragon_ingest_envelope). A plain SQL function, so the
-- planner inlines it: two primary-key probes.
-- A function file: re-applied whenever it changes (db/migrate.py); edit it in place.
CREATE FUNCTION terragon_daemon_token(p_token_hash bytea)
RETURNS TABLE (
    token_hash bytea, thread_id text, user_id text, run_id text, expires_at timestamptz,
    refusal text)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT k.token_hash, k.thread_id, k.user_id, k.run_id, r.ended_at + interval '1 hour',
           CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked'
                WHEN r.ended_at + interval '1 hour' <= now() THEN 'expired' END
    FROM daemon_token k
    JOIN thread_run r ON r.run_id = k.run_id
    WHERE k.token_hash = p_token_hash
$$;
