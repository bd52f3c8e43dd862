-- Track popularity over time from bronze's history, one row per track and
-- day (the day's last observation). Empty in Development Mode.
WITH observed AS (
    SELECT
        id,
        ingested_at,
        json_bigint(doc, 'popularity') AS popularity,
        row_number() OVER (
            PARTITION BY id, CAST(ingested_at AS DATE)
            ORDER BY ingested_at DESC
        ) AS latest
    FROM bronze.tracks
)
SELECT
    surrogate_key(id) AS track_key,
    CAST(ingested_at AS DATE) AS observed_on,
    ingested_at AS observed_at,
    CAST(popularity AS INT) AS popularity
FROM observed
WHERE latest = 1 AND popularity IS NOT NULL
