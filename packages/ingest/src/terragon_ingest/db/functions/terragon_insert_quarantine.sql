-- One quarantine row from its column → value object: the one place a quarantine row is inserted
-- (the service's `insert_quarantine` and the legacy_mode row of terragon_ingest_envelope). No
-- column list: a column added by a migration flows through as soon as the caller sends it.
-- A function file: re-applied whenever it changes (db/migrate.py); edit it in place.
-- PL/pgSQL, not SQL: its plan is kept for the session instead of made again for every statement
-- that calls it (issue 28: 0.45 → 0.33 ms of PostgreSQL CPU for a quarantine row alone).
CREATE FUNCTION terragon_insert_quarantine(p_row jsonb) RETURNS uuid
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_id uuid;
BEGIN
    INSERT INTO daemon_event_quarantine
    SELECT * FROM jsonb_populate_record(
        NULL::daemon_event_quarantine,
        jsonb_build_object('id', gen_random_uuid(), 'created_at', now(), 'offload_skipped', false)
        || jsonb_strip_nulls(p_row))
    RETURNING id INTO v_id;
    RETURN v_id;
END;
$$;
