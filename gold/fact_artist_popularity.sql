-- Every fetched version of every artist in bronze (the append-only
-- history), one row per artist and day: the last observation of the day.
-- Development Mode removes popularity and followers, so there this table
-- is empty.
WITH observed AS (
    SELECT
        id,
        ingested_at,
        json_bigint(doc, 'popularity') AS popularity,
        json_bigint(doc, 'followers.total') AS followers,
        row_number() OVER (
            PARTITION BY id, CAST(ingested_at AS DATE)
            ORDER BY ingested_at DESC
        ) AS latest
    FROM bronze.artists
)
SELECT
    surrogate_key(id) AS artist_key,
    CAST(ingested_at AS DATE) AS observed_on,
    ingested_at AS observed_at,
    CAST(popularity AS INT) AS popularity,
    followers
FROM observed
WHERE latest = 1 AND (popularity IS NOT NULL OR followers IS NOT NULL)
