-- One quarantine row from its column → value object: terragon_insert_quarantines (the one place a
-- quarantine row is inserted) for a set of one (the service's `insert_quarantine`, the
-- legacy_mode row of terragon_ingest_envelope). Returns its id.
-- A function file: re-applied whenever it changes (db/migrate.py); edit it in place.
-- PL/pgSQL: its plan is kept for the session, and its body names a function of another file
-- (files are applied by name; a SQL body would be checked against them at creation).
CREATE FUNCTION terragon_insert_quarantine(p_row jsonb) RETURNS uuid
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_id uuid;
BEGIN
    SELECT q INTO v_id FROM terragon_insert_quarantines(jsonb_build_array(p_row)) AS q;
    RETURN v_id;
END;
$$;
