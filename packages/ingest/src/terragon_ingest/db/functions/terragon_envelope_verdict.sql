-- The end of rule 3 (an ended run) and rules 4 to 8 of CONTRACT §4, the one place their conditions
-- are written: given the run's state (ended or not, its payload version, its last accepted seq,
-- whether this eventId is already recorded) and the envelope, the first rule that fires, or NULL
-- (the envelope applies).
--
-- terragon_ingest_envelopes evaluates it under the run lock, from the run's state read after the
-- lock (for an ended run, whose state no longer changes, too); a retry or a reordered envelope,
-- certain not to be applied, is decided from the same read without taking the lock.
-- A function file: re-applied whenever it changes (db/migrate.py); edit it in place.
CREATE FUNCTION terragon_envelope_verdict(
    run_ended boolean,
    run_payload_version smallint,
    run_last_seq bigint,
    recorded boolean,
    payload_version smallint,
    fields_valid boolean,
    seq bigint,
    terminal boolean,
    end_sha text
) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        -- 3. (its end) nothing is applied to an ended run (finished or failed): what repeats an
        -- envelope it accepted keeps its answer (rules 6 and 7), anything else is not this run's
        -- any more. Part of the runId rule, so before the payload version's.
        WHEN run_ended THEN CASE
            WHEN recorded THEN 'duplicate'
            WHEN seq BETWEEN 1 AND run_last_seq THEN 'stale_seq'
            ELSE 'mismatch' END
        -- 4. the first accepted envelope fixed the run's payload version
        WHEN run_payload_version IS NOT NULL AND run_payload_version <> payload_version
            THEN 'payload_version_mismatch'
        -- 5. v2 carries eventId and a positive seq
        WHEN payload_version = 2 AND NOT fields_valid THEN 'invalid_envelope'
        -- 6. the eventId is already recorded for the run
        WHEN recorded THEN 'duplicate'
        -- 7. seq not greater than the last accepted seq
        WHEN seq IS NOT NULL AND run_last_seq IS NOT NULL AND seq <= run_last_seq THEN 'stale_seq'
        -- 8. a terminal v2 envelope carries endSha
        WHEN terminal AND payload_version = 2 AND end_sha IS NULL THEN 'missing_end_sha'
    END
$$;
