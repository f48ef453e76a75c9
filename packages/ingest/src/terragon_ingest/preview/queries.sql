-- name: insert_session
INSERT INTO preview_session (
    preview_session_id, thread_id, thread_chat_id, run_id, user_id, repo_full_name,
    upstream_origin, codesandbox_id, sandbox_provider, expires_at
) VALUES (
    %(preview_session_id)s, %(thread_id)s, %(thread_chat_id)s, %(run_id)s, %(user_id)s,
    %(repo_full_name)s, %(upstream_origin)s, %(codesandbox_id)s, %(sandbox_provider)s,
    now() + make_interval(secs => %(ttl_seconds)s)
)
RETURNING *

-- name: fetch_session
SELECT * FROM preview_session WHERE preview_session_id = %(preview_session_id)s

-- name: bump_revocation
-- Remint (revoke = false) or revoke (revoke = true): every cookie minted before stops working.
UPDATE preview_session
SET revocation_version = revocation_version + 1,
    revoked_at = CASE WHEN %(revoke)s THEN COALESCE(revoked_at, now()) ELSE revoked_at END
WHERE preview_session_id = %(preview_session_id)s
RETURNING *
