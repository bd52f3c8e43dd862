-- Top artists by plays for every day, ISO week and month: a play counts for
-- every artist credited on the track (gold.bridge_track_artist).
WITH plays AS (
    SELECT b.artist_key, e.user_id, e.event_ts
    FROM silver.events e
    JOIN gold.bridge_track_artist b ON b.track_key = surrogate_key(e.track_id)
    WHERE e.event_type = 'play'
),
periods AS (
    SELECT 'day' AS period, CAST(event_ts AS DATE) AS period_start, artist_key, user_id FROM plays
    UNION ALL
    SELECT 'week', CAST(date_trunc('week', event_ts) AS DATE), artist_key, user_id FROM plays
    UNION ALL
    SELECT 'month', CAST(date_trunc('month', event_ts) AS DATE), artist_key, user_id FROM plays
),
counted AS (
    SELECT period, period_start, artist_key,
           count(*) AS plays,
           count(DISTINCT user_id) AS listeners
    FROM periods
    GROUP BY period, period_start, artist_key
),
ranked AS (
    SELECT *, row_number() OVER (
        PARTITION BY period, period_start
        ORDER BY plays DESC, listeners DESC, artist_key
    ) AS chart_rank
    FROM counted
)
SELECT
    period,
    period_start,
    CAST(chart_rank AS INT) AS chart_rank,
    artist_key,
    CAST(plays AS BIGINT) AS plays,
    CAST(listeners AS BIGINT) AS listeners
FROM ranked
WHERE chart_rank <= 100
