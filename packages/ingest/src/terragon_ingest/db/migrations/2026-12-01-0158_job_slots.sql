-- One row per periodic job per time slot, claimed by the one replica that runs it (issue 14):
-- every replica wakes at the slot boundary and INSERTs; the primary key lets exactly one win, so
-- N replicas run the sweep, the rollup and retention once per slot, not N times. The jobs' own
-- advisory locks stay (a CLI run or a slot that overruns into the next never runs concurrently).
-- Rows older than a day are pruned by the claim itself (lifecycle/queries.sql).
-- Never edit this file once landed: add a new migration instead (see CONTRIBUTING.md).
CREATE TABLE job_slot (
    job         text        NOT NULL,
    slot_start  timestamptz NOT NULL,
    claimed_by  text        NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    failed      boolean,
    PRIMARY KEY (job, slot_start)
);
