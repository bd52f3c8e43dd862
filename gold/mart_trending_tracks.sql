-- Trending tracks: for every day of the events, the tracks whose plays in
-- the 7 days up to that day grew most over the 7 days before (at least 3
-- plays in the recent window), the top 50 per day.
WITH daily AS (
    SELECT CAST(event_ts AS DATE) AS day, track_id, count(*) AS plays
    FROM silver.events
    WHERE event_type = 'play'
    GROUP BY CAST(event_ts AS DATE), track_id
),
days AS (
    SELECT DISTINCT day FROM daily
),
windows AS (
    SELECT
        d.day AS as_of,
        c.track_id,
        sum(CASE WHEN c.day > d.day - INTERVAL '7 days' THEN c.plays ELSE 0 END) AS plays_7d,
        sum(CASE WHEN c.day <= d.day - INTERVAL '7 days' THEN c.plays ELSE 0 END) AS plays_prev_7d
    FROM days d
    JOIN daily c ON c.day > d.day - INTERVAL '14 days' AND c.day <= d.day
    GROUP BY d.day, c.track_id
),
scored AS (
    SELECT *,
        CAST(plays_7d - plays_prev_7d AS DOUBLE) / greatest(plays_prev_7d, 1) AS growth
    FROM windows
    WHERE plays_7d >= 3
),
ranked AS (
    SELECT *, row_number() OVER (
        PARTITION BY as_of ORDER BY growth DESC, plays_7d DESC, track_id
    ) AS trend_rank
    FROM scored
)
SELECT
    as_of,
    CAST(trend_rank AS INT) AS trend_rank,
    surrogate_key(track_id) AS track_key,
    track_id,
    CAST(plays_7d AS BIGINT) AS plays_7d,
    CAST(plays_prev_7d AS BIGINT) AS plays_prev_7d,
    growth
FROM ranked
WHERE trend_rank <= 50
