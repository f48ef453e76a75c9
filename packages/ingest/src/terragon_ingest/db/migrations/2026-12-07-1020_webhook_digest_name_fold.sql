-- Issue 23 (CONTRACT §5): webhook deliveries are idempotent by content, and GitHub names are
-- case-insensitive. Never edit this file once landed: add a new migration instead.
--
-- The one fold of a GitHub name is `lower(x COLLATE "C")`: ASCII letters only, whatever the
-- database's locale, exactly `terragon_core.fold_github_name` (GitHub names are ASCII).

-- 1. Deliveries keyed by the sha256 of their body. GitHub signs the body, not
-- `X-GitHub-Delivery`: a body seen in the last 30 days is a duplicate under any delivery id.
-- A delivery id stays unique too (GitHub never sends two bodies under one id). Rows recorded
-- before this migration have no body digest: each gets the digest of a text no webhook body is,
-- so their delivery ids keep deduplicating until retention purges them (30 days).
ALTER TABLE github_webhook_delivery ADD COLUMN body_sha256 bytea;
UPDATE github_webhook_delivery
SET body_sha256 = sha256(convert_to('terragon: delivery recorded before body digests: '
                                    || delivery_id, 'UTF8'));
ALTER TABLE github_webhook_delivery ALTER COLUMN body_sha256 SET NOT NULL;
ALTER TABLE github_webhook_delivery DROP CONSTRAINT github_webhook_delivery_pkey;
ALTER TABLE github_webhook_delivery ADD CONSTRAINT github_webhook_delivery_pkey
    PRIMARY KEY (body_sha256);
ALTER TABLE github_webhook_delivery ADD CONSTRAINT github_webhook_delivery_delivery_id_key
    UNIQUE (delivery_id);
ALTER TABLE github_webhook_delivery ADD CONSTRAINT github_webhook_delivery_body_sha256_check
    CHECK (octet_length(body_sha256) = 32);
-- Retention deletes rows past 30 days by this column.
CREATE INDEX github_webhook_delivery_received_at ON github_webhook_delivery (received_at);

-- 2. Permission rows hold folded names. Rows that fold into one are merged first (the newest
-- `updated_at` stays; the primary keys would refuse the second of two folded rows), then the
-- rest are folded, and a CHECK keeps every later write folded.
DELETE FROM github_repo r USING github_repo o
WHERE lower(r.repo_full_name COLLATE "C") = lower(o.repo_full_name COLLATE "C")
  AND (r.updated_at, r.repo_full_name COLLATE "C") < (o.updated_at, o.repo_full_name COLLATE "C");
UPDATE github_repo SET repo_full_name = lower(repo_full_name COLLATE "C")
WHERE repo_full_name <> lower(repo_full_name COLLATE "C");
ALTER TABLE github_repo ADD CONSTRAINT github_repo_repo_full_name_folded
    CHECK (repo_full_name = lower(repo_full_name COLLATE "C"));

DELETE FROM github_repo_collaborator r USING github_repo_collaborator o
WHERE lower(r.repo_full_name COLLATE "C") = lower(o.repo_full_name COLLATE "C")
  AND lower(r.github_login COLLATE "C") = lower(o.github_login COLLATE "C")
  AND (r.updated_at, r.repo_full_name COLLATE "C", r.github_login COLLATE "C")
    < (o.updated_at, o.repo_full_name COLLATE "C", o.github_login COLLATE "C");
UPDATE github_repo_collaborator
SET repo_full_name = lower(repo_full_name COLLATE "C"),
    github_login = lower(github_login COLLATE "C")
WHERE repo_full_name <> lower(repo_full_name COLLATE "C")
   OR github_login <> lower(github_login COLLATE "C");
ALTER TABLE github_repo_collaborator ADD CONSTRAINT github_repo_collaborator_names_folded
    CHECK (repo_full_name = lower(repo_full_name COLLATE "C")
           AND github_login = lower(github_login COLLATE "C"));

DELETE FROM github_team_member r USING github_team_member o
WHERE r.team_id = o.team_id
  AND lower(r.github_login COLLATE "C") = lower(o.github_login COLLATE "C")
  AND (r.updated_at, r.github_login COLLATE "C") < (o.updated_at, o.github_login COLLATE "C");
UPDATE github_team_member SET github_login = lower(github_login COLLATE "C")
WHERE github_login <> lower(github_login COLLATE "C");
ALTER TABLE github_team_member ADD CONSTRAINT github_team_member_login_folded
    CHECK (github_login = lower(github_login COLLATE "C"));

DELETE FROM github_team_repo r USING github_team_repo o
WHERE r.team_id = o.team_id
  AND lower(r.repo_full_name COLLATE "C") = lower(o.repo_full_name COLLATE "C")
  AND (r.updated_at, r.repo_full_name COLLATE "C") < (o.updated_at, o.repo_full_name COLLATE "C");
UPDATE github_team_repo SET repo_full_name = lower(repo_full_name COLLATE "C")
WHERE repo_full_name <> lower(repo_full_name COLLATE "C");
ALTER TABLE github_team_repo ADD CONSTRAINT github_team_repo_repo_folded
    CHECK (repo_full_name = lower(repo_full_name COLLATE "C"));

-- 3. Names kept as given elsewhere are compared through the same fold: a GitHub login links to
-- one user under any casing (the index it replaces, on the locale's `lower()`, was at least as
-- strict, so every existing row satisfies this one), and the owner check finds a user's threads
-- on a repo under any casing.
DROP INDEX github_account_login;
CREATE UNIQUE INDEX github_account_login ON github_account (lower(github_login COLLATE "C"));
CREATE INDEX thread_user_repo_folded ON thread (user_id, lower(repo_full_name COLLATE "C"));
