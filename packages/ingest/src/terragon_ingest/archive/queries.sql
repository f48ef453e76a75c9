-- Archive rollup and retention. Timestamps are exported as epoch microseconds
-- (exact: `extract(epoch ...)` is numeric) so the Parquet writer needs no time-zone parsing.
-- The exports are unordered: the rollup splits them by hour and DuckDB sorts each hour file.

-- name: try_lock
SELECT pg_try_advisory_lock(%(key)s)

-- name: unlock
SELECT pg_advisory_unlock(%(key)s)

-- name: fetch_now
SELECT now()

-- name: fetch_watermark
SELECT watermark FROM archive_watermark WHERE dataset = %(dataset)s

-- name: insert_watermark
INSERT INTO archive_watermark (dataset, watermark) VALUES (%(dataset)s, %(watermark)s)
ON CONFLICT (dataset) DO NOTHING

-- name: advance_watermark
UPDATE archive_watermark SET watermark = %(new)s, updated_at = now()
WHERE dataset = %(dataset)s AND watermark = %(old)s

-- name: count_quarantine
-- What a rebuild of [lo, hi) would write (rollup.plan_rebuild compares it with the archive's count).
SELECT count(*) FROM daemon_event_quarantine WHERE created_at >= %(lo)s AND created_at < %(hi)s

-- name: count_preview_event
SELECT count(*) FROM preview_event WHERE ts_server >= %(lo)s AND ts_server < %(hi)s

-- name: first_quarantine_at
SELECT min(created_at) FROM daemon_event_quarantine WHERE created_at >= %(since)s

-- name: first_preview_event_at
SELECT min(ts_server) FROM preview_event WHERE ts_server >= %(since)s

-- name: export_quarantine
-- The SELECT list is filled in from the dataset's ARCHIVE_COLUMNS, by name and in their order
-- (repository `_export_query`; `_EXPORT_COLUMNS` the few not read as they are stored).
COPY (
    SELECT {columns}
    FROM daemon_event_quarantine q
    WHERE q.created_at >= %(lo)s AND q.created_at < %(hi)s
) TO STDOUT (FORMAT csv)

-- name: export_preview_event
COPY (
    SELECT {columns}
    FROM preview_event q
    WHERE q.ts_server >= %(lo)s AND q.ts_server < %(hi)s
) TO STDOUT (FORMAT csv)

-- name: list_day_partitions
-- A retained table's day partitions, each with its seal (archive_day_seal) if it has one.
SELECT c.relname, s.rows
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
LEFT JOIN archive_day_seal s ON s.partition_oid = c.oid
WHERE i.inhparent = %(parent)s::regclass
  AND c.relname ~ ('^' || %(parent)s || '_p[0-9]{8}$')
ORDER BY c.relname

-- name: list_default_days_daemon_event_quarantine
SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date AS day
FROM daemon_event_quarantine_default
WHERE created_at < %(before)s
ORDER BY day

-- name: list_default_days_preview_event
SELECT DISTINCT (ts_server AT TIME ZONE 'UTC')::date AS day
FROM preview_event_default
WHERE ts_server < %(before)s
ORDER BY day

-- name: count_day_daemon_event_quarantine
-- Exact, and cheap next to the GROUP BY below (no hashing: 0.2 s vs 1.1 s for a 1 M-row day).
-- Retention runs it once per day, when it seals the day (archive/retention.py).
SELECT count(*) FROM daemon_event_quarantine WHERE created_at >= %(lo)s AND created_at < %(hi)s

-- name: count_day_preview_event
SELECT count(*) FROM preview_event WHERE ts_server >= %(lo)s AND ts_server < %(hi)s

-- name: count_groups_daemon_event_quarantine
SELECT reason, repo_full_name, user_id, sandbox_provider, count(*)
FROM daemon_event_quarantine
WHERE created_at >= %(lo)s AND created_at < %(hi)s
GROUP BY reason, repo_full_name, user_id, sandbox_provider

-- name: count_groups_preview_event
SELECT event_name, count(*)
FROM preview_event
WHERE ts_server >= %(lo)s AND ts_server < %(hi)s
GROUP BY event_name

-- name: fetch_quarantine_object_keys
-- Through the partial index daemon_event_quarantine_object_key (offloaded rows only).
SELECT payload_object_key
FROM daemon_event_quarantine
WHERE created_at >= %(lo)s AND created_at < %(hi)s AND payload_object_key IS NOT NULL

-- name: delete_default_day_daemon_event_quarantine
DELETE FROM daemon_event_quarantine_default WHERE created_at >= %(lo)s AND created_at < %(hi)s

-- name: delete_default_day_preview_event
DELETE FROM preview_event_default WHERE ts_server >= %(lo)s AND ts_server < %(hi)s

-- name: count_expired_github_webhook_delivery
SELECT count(*) FROM github_webhook_delivery WHERE received_at < %(before)s

-- name: delete_expired_github_webhook_delivery
DELETE FROM github_webhook_delivery WHERE received_at < %(before)s

-- name: delete_seal
DELETE FROM archive_day_seal
WHERE (dataset = %(dataset)s AND day = %(day)s) OR partition_oid = %(partition)s::regclass

-- name: insert_seal
INSERT INTO archive_day_seal (dataset, day, partition_oid, rows, breakdown, fingerprint)
VALUES (%(dataset)s, %(day)s, %(partition)s::regclass, %(rows)s, %(breakdown)s, %(fingerprint)s)

-- name: fetch_seal
SELECT breakdown, fingerprint FROM archive_day_seal WHERE dataset = %(dataset)s AND day = %(day)s

-- name: take_seal
DELETE FROM archive_day_seal
WHERE dataset = %(dataset)s AND day = %(day)s AND partition_oid = %(partition)s::regclass
RETURNING rows
