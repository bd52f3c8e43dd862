-- When people listen: plays per ISO weekday (1 = Monday) and UTC hour,
-- averaged over the days of that weekday seen.
WITH plays AS (
    SELECT
        CAST(extract(isodow FROM event_ts) AS INT) AS weekday,
        CAST(extract(hour FROM event_ts) AS INT) AS hour_utc,
        CAST(event_ts AS DATE) AS day,
        user_id
    FROM silver.events
    WHERE event_type = 'play'
),
days AS (
    SELECT CAST(extract(isodow FROM event_ts) AS INT) AS weekday,
           count(DISTINCT CAST(event_ts AS DATE)) AS days_seen
    FROM silver.events
    GROUP BY 1
)
SELECT
    p.weekday,
    p.hour_utc,
    CAST(count(*) AS BIGINT) AS plays,
    CAST(count(DISTINCT p.user_id) AS BIGINT) AS listeners,
    CAST(d.days_seen AS BIGINT) AS days_seen,
    CAST(count(*) AS DOUBLE) / d.days_seen AS plays_per_day
FROM plays p
JOIN days d ON d.weekday = p.weekday
GROUP BY p.weekday, p.hour_utc, d.days_seen
