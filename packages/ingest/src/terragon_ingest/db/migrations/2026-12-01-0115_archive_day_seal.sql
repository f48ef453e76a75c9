-- Retention's seals (issue 16): a day partition is counted exactly once, when retention first
-- finds it archived and reconciled, instead of at purge time. The seal row holds the count, the
-- purge event's breakdown and a fingerprint of the archive's day (its row count and the digest
-- of its aggregates), which the purge compares with the archive as it is then; a trigger on the sealed partition deletes the seal row in the same
-- transaction as any later insert, delete, truncate or change of an archived column, so a seal
-- that still exists proves the partition still holds exactly what was counted
-- (archive/retention.py explains why this is exact).
-- Never edit this file once landed: add a new migration instead (see CONTRIBUTING.md).

CREATE TABLE archive_day_seal (
    dataset       text NOT NULL CHECK (dataset IN ('quarantine', 'preview_event')),
    day           date NOT NULL,
    partition_oid oid NOT NULL UNIQUE,
    rows          bigint NOT NULL,
    breakdown     jsonb NOT NULL,
    fingerprint   text NOT NULL,
    sealed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset, day)
);

-- Defined here, not in db/functions/: live triggers depend on it, and the function-file runner
-- drops a function before re-creating it (which those triggers would forbid). It never changes.
CREATE FUNCTION terragon_break_day_seal() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM archive_day_seal WHERE partition_oid = TG_RELID;
    RETURN NULL;
END;
$$;
