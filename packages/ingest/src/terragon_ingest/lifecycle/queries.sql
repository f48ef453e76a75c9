-- name: claim_job_slot
-- True for the one replica whose INSERT made the row; the others get no row. Also prunes this
-- job's slots older than a day (a primary-key range scan: the table holds one day per job).
WITH pruned AS (
    DELETE FROM job_slot
    WHERE job = %(job)s AND slot_start < %(slot_start)s - interval '1 day'
)
INSERT INTO job_slot (job, slot_start, claimed_by)
VALUES (%(job)s, %(slot_start)s, %(claimed_by)s)
ON CONFLICT (job, slot_start) DO NOTHING
RETURNING true

-- name: finish_job_slot
UPDATE job_slot SET finished_at = now(), failed = %(failed)s
WHERE job = %(job)s AND slot_start = %(slot_start)s
