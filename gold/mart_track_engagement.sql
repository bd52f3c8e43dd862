-- How listeners treat each track: plays, skips, completions and likes, and
-- the skip and completion rates (per play).
WITH counted AS (
    SELECT
        track_id,
        count(*) FILTER (WHERE event_type = 'play') AS plays,
        count(*) FILTER (WHERE event_type = 'skip') AS skips,
        count(*) FILTER (WHERE event_type = 'complete') AS completes,
        count(*) FILTER (WHERE event_type = 'like') AS likes,
        count(DISTINCT user_id) FILTER (WHERE event_type = 'play') AS listeners
    FROM silver.events
    GROUP BY track_id
)
SELECT
    surrogate_key(track_id) AS track_key,
    track_id,
    CAST(plays AS BIGINT) AS plays,
    CAST(skips AS BIGINT) AS skips,
    CAST(completes AS BIGINT) AS completes,
    CAST(likes AS BIGINT) AS likes,
    CAST(listeners AS BIGINT) AS listeners,
    CASE WHEN plays > 0 THEN CAST(skips AS DOUBLE) / plays END AS skip_rate,
    CASE WHEN plays > 0 THEN CAST(completes AS DOUBLE) / plays END AS completion_rate
FROM counted
