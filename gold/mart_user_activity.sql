-- What each user did each day (UTC).
SELECT
    user_id,
    CAST(event_ts AS DATE) AS activity_date,
    CAST(count(*) AS BIGINT) AS events,
    CAST(count(*) FILTER (WHERE event_type = 'play') AS BIGINT) AS plays,
    CAST(count(*) FILTER (WHERE event_type = 'skip') AS BIGINT) AS skips,
    CAST(count(*) FILTER (WHERE event_type = 'like') AS BIGINT) AS likes,
    CAST(count(DISTINCT track_id) FILTER (WHERE event_type = 'play') AS BIGINT) AS distinct_tracks,
    min(event_ts) AS first_event_at,
    max(event_ts) AS last_event_at
FROM silver.events
GROUP BY user_id, CAST(event_ts AS DATE)
