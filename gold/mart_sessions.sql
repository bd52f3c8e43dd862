-- Listening sessions by inactivity: a user's session ends when 30 minutes
-- pass without an event (the apps' own session ids are not trusted to
-- span devices or restarts).
WITH ordered AS (
    SELECT
        user_id, event_id, event_ts, event_type, track_id, device, country,
        lag(event_ts) OVER (PARTITION BY user_id ORDER BY event_ts, event_id) AS previous_ts
    FROM silver.events
),
marked AS (
    SELECT *,
        CASE WHEN previous_ts IS NULL
                  OR date_part('epoch', event_ts) - date_part('epoch', previous_ts) > 1800
             THEN 1 ELSE 0 END AS starts
    FROM ordered
),
numbered AS (
    SELECT *,
        sum(starts) OVER (
            PARTITION BY user_id ORDER BY event_ts, event_id
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS session_number
    FROM marked
)
SELECT
    surrogate_key(user_id, CAST(min(event_ts) AS VARCHAR)) AS session_key,
    user_id,
    min(event_ts) AS started_at,
    max(event_ts) AS ended_at,
    CAST(round(date_part('epoch', max(event_ts)) - date_part('epoch', min(event_ts))) AS BIGINT) AS duration_seconds,
    CAST(count(*) AS BIGINT) AS events,
    CAST(count(*) FILTER (WHERE event_type = 'play') AS BIGINT) AS plays,
    CAST(count(DISTINCT track_id) FILTER (WHERE event_type = 'play') AS BIGINT) AS tracks,
    CAST(count(*) FILTER (WHERE event_type = 'skip') AS BIGINT) AS skips,
    min(device) AS device,
    min(country) AS country
FROM numbered
GROUP BY user_id, session_number
