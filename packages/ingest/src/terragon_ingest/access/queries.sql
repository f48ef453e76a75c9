-- name: fetch_repo_access
-- The default permission check: thread owner, collaborator or team member. A public repo grants
-- nothing by itself: a preview shows uncommitted sandbox state, which is not public.
-- GitHub names compare folded, `lower(x COLLATE "C")` (ASCII only, = core `fold_github_name`):
-- permission rows are stored folded (a CHECK holds them to it); thread and account names are
-- kept as given and folded here.
WITH q AS (SELECT lower(%(repo_full_name)s::text COLLATE "C") AS repo)
SELECT
    EXISTS (SELECT 1 FROM thread t, q
            WHERE t.user_id = %(user_id)s AND lower(t.repo_full_name COLLATE "C") = q.repo)
 OR EXISTS (SELECT 1 FROM github_account a, q
            JOIN github_repo_collaborator c ON c.repo_full_name = q.repo
            WHERE a.user_id = %(user_id)s
              AND c.github_login = lower(a.github_login COLLATE "C"))
 OR EXISTS (SELECT 1 FROM github_account a, q
            JOIN github_team_repo tr ON tr.repo_full_name = q.repo
            JOIN github_team_member m ON m.team_id = tr.team_id
            WHERE a.user_id = %(user_id)s
              AND m.github_login = lower(a.github_login COLLATE "C"))
    AS allowed

-- name: upsert_github_account
INSERT INTO github_account (user_id, github_login) VALUES (%(user_id)s, %(github_login)s)
ON CONFLICT (user_id) DO UPDATE SET github_login = EXCLUDED.github_login, updated_at = now()

-- name: fetch_users_for_login
SELECT user_id FROM github_account
WHERE lower(github_login COLLATE "C") = lower(%(github_login)s::text COLLATE "C")

-- name: upsert_repo_visibility
INSERT INTO github_repo (repo_full_name, visibility)
VALUES (lower(%(repo_full_name)s::text COLLATE "C"), %(visibility)s)
ON CONFLICT (repo_full_name) DO UPDATE SET visibility = EXCLUDED.visibility, updated_at = now()

-- name: insert_collaborator
INSERT INTO github_repo_collaborator (repo_full_name, github_login)
VALUES (lower(%(repo_full_name)s::text COLLATE "C"), lower(%(github_login)s::text COLLATE "C"))
ON CONFLICT (repo_full_name, github_login) DO UPDATE SET updated_at = now()

-- name: delete_collaborator
DELETE FROM github_repo_collaborator
WHERE repo_full_name = lower(%(repo_full_name)s::text COLLATE "C")
  AND github_login = lower(%(github_login)s::text COLLATE "C")

-- name: upsert_team
INSERT INTO github_team (team_id, org, slug) VALUES (%(team_id)s, %(org)s, %(slug)s)
ON CONFLICT (team_id) DO UPDATE SET org = EXCLUDED.org, slug = EXCLUDED.slug, updated_at = now()

-- name: delete_team
WITH members AS (DELETE FROM github_team_member WHERE team_id = %(team_id)s),
     repos AS (DELETE FROM github_team_repo WHERE team_id = %(team_id)s)
DELETE FROM github_team WHERE team_id = %(team_id)s

-- name: insert_team_member
INSERT INTO github_team_member (team_id, github_login)
VALUES (%(team_id)s, lower(%(github_login)s::text COLLATE "C"))
ON CONFLICT (team_id, github_login) DO UPDATE SET updated_at = now()

-- name: delete_team_member
DELETE FROM github_team_member
WHERE team_id = %(team_id)s AND github_login = lower(%(github_login)s::text COLLATE "C")

-- name: insert_team_repo
INSERT INTO github_team_repo (team_id, repo_full_name)
VALUES (%(team_id)s, lower(%(repo_full_name)s::text COLLATE "C"))
ON CONFLICT (team_id, repo_full_name) DO UPDATE SET updated_at = now()

-- name: delete_team_repo
DELETE FROM github_team_repo
WHERE team_id = %(team_id)s AND repo_full_name = lower(%(repo_full_name)s::text COLLATE "C")

-- name: fetch_team_repos
SELECT repo_full_name FROM github_team_repo WHERE team_id = %(team_id)s ORDER BY repo_full_name

-- name: insert_delivery
-- Idempotency by content (CONTRACT §5): a body already recorded (the primary key), or a delivery
-- id already recorded, inserts nothing. Runs in the transaction that applies the delivery: the
-- digest commits with the effect, and a concurrent copy waits on the key, then finds it.
INSERT INTO github_webhook_delivery (body_sha256, delivery_id, event, action)
VALUES (%(body_sha256)s, %(delivery_id)s, %(event)s, %(action)s)
ON CONFLICT DO NOTHING
RETURNING delivery_id

-- name: fetch_delivery
SELECT targets, invalidated_at FROM github_webhook_delivery WHERE body_sha256 = %(body_sha256)s

-- name: set_delivery_targets
UPDATE github_webhook_delivery SET targets = %(targets)s WHERE body_sha256 = %(body_sha256)s

-- name: mark_delivery_invalidated
UPDATE github_webhook_delivery SET invalidated_at = now() WHERE body_sha256 = %(body_sha256)s
