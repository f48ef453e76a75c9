-- Repo access and preview sessions (CONTRACT §5): GitHub permission tables kept current by
-- webhooks, the terragon user ↔ GitHub login link, webhook delivery dedupe, preview sessions.
-- Never edit this file once landed: add a new migration instead (see CONTRIBUTING.md).

-- Which GitHub login a terragon user is. Permission rows below are keyed by GitHub login.
CREATE TABLE github_account (
    user_id      text PRIMARY KEY,
    github_login text NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX github_account_login ON github_account (lower(github_login));

CREATE TABLE github_repo (
    repo_full_name text PRIMARY KEY,
    visibility     text NOT NULL CHECK (visibility IN ('public', 'private', 'internal')),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE github_repo_collaborator (
    repo_full_name text NOT NULL,
    github_login   text NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repo_full_name, github_login)
);
CREATE INDEX github_repo_collaborator_login ON github_repo_collaborator (github_login);

-- `team_id` is GitHub's numeric team id as text (stable across renames); `slug` for humans.
CREATE TABLE github_team (
    team_id    text PRIMARY KEY,
    org        text NOT NULL,
    slug       text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE github_team_member (
    team_id      text NOT NULL,
    github_login text NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, github_login)
);
CREATE INDEX github_team_member_login ON github_team_member (github_login);

CREATE TABLE github_team_repo (
    team_id        text NOT NULL,
    repo_full_name text NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, repo_full_name)
);
CREATE INDEX github_team_repo_repo ON github_team_repo (repo_full_name);

-- One row per `X-GitHub-Delivery`: a redelivery changes no table twice. `targets` holds the
-- cache invalidations the delivery implies, so a redelivery after a failed invalidation retries
-- them (`invalidated_at` stays NULL until they all succeeded).
CREATE TABLE github_webhook_delivery (
    delivery_id    text PRIMARY KEY,
    event          text NOT NULL,
    action         text,
    targets        jsonb NOT NULL DEFAULT '[]'::jsonb,
    received_at    timestamptz NOT NULL DEFAULT now(),
    invalidated_at timestamptz
);

-- A preview session is bound to one run of one (thread, chat), one user and one upstream origin.
-- Bumping `revocation_version` invalidates every cookie minted before (revoke / remint).
CREATE TABLE preview_session (
    preview_session_id text PRIMARY KEY,
    thread_id          text NOT NULL REFERENCES thread (thread_id),
    thread_chat_id     text NOT NULL,
    run_id             text NOT NULL REFERENCES thread_run (run_id),
    user_id            text NOT NULL,
    repo_full_name     text NOT NULL,
    upstream_origin    text NOT NULL,
    codesandbox_id     text,
    sandbox_provider   text,
    revocation_version integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    revoked_at         timestamptz
);
CREATE INDEX preview_session_run ON preview_session (run_id);
CREATE INDEX preview_session_user_repo ON preview_session (user_id, repo_full_name);
