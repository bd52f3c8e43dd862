-- Track popularity over time from bronze's history, one row per track and
-- day (the day's last observation). Empty in Development Mode.
-- The day's last version is found from ids and times alone, and only the
-- popularity of each version is carried to the join: a window over the
-- versions sorted every whole document (3.4 GB of them at 2M tracks).
WITH versions AS (
    SELECT id, ingested_at, json_bigint(doc, 'popularity') AS popularity
    FROM bronze.tracks
),
latest AS (
    SELECT id, max(ingested_at) AS observed_at
    FROM bronze.tracks
    GROUP BY id, CAST(ingested_at AS DATE)
)
SELECT
    surrogate_key(v.id) AS track_key,
    CAST(v.ingested_at AS DATE) AS observed_on,
    v.ingested_at AS observed_at,
    CAST(v.popularity AS INT) AS popularity
FROM versions AS v
JOIN latest AS l ON v.id = l.id AND v.ingested_at = l.observed_at
WHERE v.popularity IS NOT NULL
