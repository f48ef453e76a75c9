-- Quarantine rows from their column → value objects (a JSON array), one INSERT … SELECT for the
-- whole set: the one place a quarantine row is inserted (terragon_record_quarantines' batches;
-- terragon_insert_quarantine, one row: the service alone and the legacy_mode row of
-- terragon_ingest_envelope). No column list: a column added by a migration flows through as soon
-- as the caller sends it. Returns the rows' ids.
-- A function file: re-applied whenever it changes (db/migrate.py); edit it in place.
-- PL/pgSQL, not SQL: its plan is kept for the session instead of made again for every statement
-- that calls it (issue 28: 0.45 → 0.33 ms of PostgreSQL CPU for a quarantine row alone); one
-- statement for a batch, not one per row (issue 28: a row's INSERT started an executor each).
CREATE FUNCTION terragon_insert_quarantines(p_rows jsonb) RETURNS SETOF uuid
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    RETURN QUERY
    WITH inserted AS (
        INSERT INTO daemon_event_quarantine
        SELECT x.* FROM jsonb_array_elements(p_rows) AS r(value),
             jsonb_populate_record(
                 NULL::daemon_event_quarantine,
                 jsonb_build_object('id', gen_random_uuid(), 'created_at', now(),
                                    'offload_skipped', false)
                 || jsonb_strip_nulls(r.value)) AS x
        RETURNING id
    )
    SELECT id FROM inserted;
END;
$$;
