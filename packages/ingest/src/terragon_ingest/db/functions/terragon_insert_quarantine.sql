-- One quarantine row from its column → value object: the one place a quarantine row is inserted
-- (the service's `insert_quarantine` and the legacy_mode row of terragon_ingest_envelope). No
-- column list: a column added by a migration flows through as soon as the caller sends it.
-- A function file: re-applied whenever it changes (db/migrate.py); edit it in place.
CREATE FUNCTION terragon_insert_quarantine(p_row jsonb) RETURNS uuid
LANGUAGE sql AS $$
    INSERT INTO daemon_event_quarantine
    SELECT * FROM jsonb_populate_record(
        NULL::daemon_event_quarantine,
        jsonb_build_object('id', gen_random_uuid(), 'created_at', now(), 'offload_skipped', false)
        || jsonb_strip_nulls(p_row))
    RETURNING id
$$;
