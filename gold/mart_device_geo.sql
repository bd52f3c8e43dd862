-- Listening by day, country and device.
SELECT
    CAST(event_ts AS DATE) AS activity_date,
    coalesce(country, 'unknown') AS country,
    coalesce(device, 'unknown') AS device,
    CAST(count(*) FILTER (WHERE event_type = 'play') AS BIGINT) AS plays,
    CAST(count(*) FILTER (WHERE event_type = 'skip') AS BIGINT) AS skips,
    CAST(count(DISTINCT user_id) AS BIGINT) AS users,
    CASE WHEN count(*) FILTER (WHERE event_type = 'play') > 0
         THEN CAST(count(*) FILTER (WHERE event_type = 'skip') AS DOUBLE)
              / count(*) FILTER (WHERE event_type = 'play')
    END AS skip_rate
FROM silver.events
GROUP BY CAST(event_ts AS DATE), coalesce(country, 'unknown'), coalesce(device, 'unknown')
