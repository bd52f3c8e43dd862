-- Top tracks by plays for every day, ISO week (from Monday) and month of
-- the listening events: the 100 most played per period. A play is a
-- `play` event; ties go to more listeners, then the track id.
WITH plays AS (
    SELECT track_id, user_id, event_ts
    FROM silver.events
    WHERE event_type = 'play'
),
periods AS (
    SELECT 'day' AS period, CAST(event_ts AS DATE) AS period_start, track_id, user_id FROM plays
    UNION ALL
    SELECT 'week', CAST(date_trunc('week', event_ts) AS DATE), track_id, user_id FROM plays
    UNION ALL
    SELECT 'month', CAST(date_trunc('month', event_ts) AS DATE), track_id, user_id FROM plays
),
counted AS (
    SELECT period, period_start, track_id,
           count(*) AS plays,
           count(DISTINCT user_id) AS listeners
    FROM periods
    GROUP BY period, period_start, track_id
),
ranked AS (
    SELECT *, row_number() OVER (
        PARTITION BY period, period_start
        ORDER BY plays DESC, listeners DESC, track_id
    ) AS chart_rank
    FROM counted
)
SELECT
    period,
    period_start,
    CAST(chart_rank AS INT) AS chart_rank,
    surrogate_key(track_id) AS track_key,
    track_id,
    CAST(plays AS BIGINT) AS plays,
    CAST(listeners AS BIGINT) AS listeners
FROM ranked
WHERE chart_rank <= 100
