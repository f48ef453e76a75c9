-- name: insert_preview_event
INSERT INTO preview_event (
    ts_server, schema_version, event_name, origin, trace_id, thread_id, thread_chat_id, run_id,
    codesandbox_id, sandbox_provider, preview_session_id, user_id, proxy_req_id, properties
) VALUES (
    %(ts_server)s, %(schema_version)s, %(event_name)s, %(origin)s, %(trace_id)s, %(thread_id)s,
    %(thread_chat_id)s, %(run_id)s, %(codesandbox_id)s, %(sandbox_provider)s,
    %(preview_session_id)s, %(user_id)s, %(proxy_req_id)s, %(properties)s
)

-- ---------------------------------------------------------------- alert hooks (alerts.py)

-- name: fetch_quarantine_breaches
-- Repos whose trailing-5-minute average stayed above the threshold for every one of the last
-- `for_minutes` closed minutes (the Prometheus rule `rate(x[5m]) * 60 > t` with `for: 10m`).
WITH minutes AS (
    SELECT generate_series(
        %(end)s::timestamptz - make_interval(mins => %(for_minutes)s + %(rate_minutes)s - 1),
        %(end)s::timestamptz - interval '1 minute', interval '1 minute') AS minute
), counts AS (
    SELECT coalesce(repo_full_name, '') AS repo, date_trunc('minute', created_at) AS minute,
           count(*) AS n
    FROM daemon_event_quarantine
    WHERE created_at >= %(end)s::timestamptz - make_interval(mins => %(for_minutes)s + %(rate_minutes)s - 1)
      AND created_at < %(end)s
    GROUP BY 1, 2
), grid AS (
    SELECT r.repo, m.minute, coalesce(c.n, 0) AS n
    FROM (SELECT DISTINCT repo FROM counts) r
    CROSS JOIN minutes m
    LEFT JOIN counts c ON c.repo = r.repo AND c.minute = m.minute
), rolling AS (
    SELECT repo, minute, avg(n) OVER (PARTITION BY repo ORDER BY minute
                                      ROWS BETWEEN %(rate_minutes)s - 1 PRECEDING AND CURRENT ROW) AS rate
    FROM grid
)
SELECT repo, min(rate)::float8 AS min_rate, max(rate)::float8 AS max_rate
FROM rolling
WHERE minute >= %(end)s::timestamptz - make_interval(mins => %(for_minutes)s)
GROUP BY repo
HAVING min(rate) > %(threshold)s

-- name: fetch_access_denied_breach
WITH minutes AS (
    SELECT generate_series(
        %(end)s::timestamptz - make_interval(mins => %(for_minutes)s + %(rate_minutes)s - 1),
        %(end)s::timestamptz - interval '1 minute', interval '1 minute') AS minute
), counts AS (
    SELECT date_trunc('minute', ts_server) AS minute, count(*) AS n
    FROM preview_event
    WHERE event_name = %(event_name)s
      AND user_id IS DISTINCT FROM %(anonymous_user)s  -- strangers' denials never page
      AND ts_server >= %(end)s::timestamptz - make_interval(mins => %(for_minutes)s + %(rate_minutes)s - 1)
      AND ts_server < %(end)s
    GROUP BY 1
), rolling AS (
    SELECT m.minute, avg(coalesce(c.n, 0)) OVER (ORDER BY m.minute
                     ROWS BETWEEN %(rate_minutes)s - 1 PRECEDING AND CURRENT ROW) AS rate
    FROM minutes m LEFT JOIN counts c ON c.minute = m.minute
)
SELECT min(rate)::float8 AS min_rate, max(rate)::float8 AS max_rate
FROM rolling
WHERE minute >= %(end)s::timestamptz - make_interval(mins => %(for_minutes)s)
HAVING min(rate) > %(threshold)s

-- name: fetch_alert_states
SELECT rule, dims_key FROM alert_state

-- name: insert_alert_state
INSERT INTO alert_state (rule, dims_key, dimensions, firing_since)
VALUES (%(rule)s, %(dims_key)s, %(dimensions)s, %(firing_since)s)
ON CONFLICT (rule, dims_key) DO NOTHING

-- name: delete_alert_state
DELETE FROM alert_state WHERE rule = %(rule)s AND dims_key = %(dims_key)s
