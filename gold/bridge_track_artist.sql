SELECT
    surrogate_key(track_id) AS track_key,
    surrogate_key(id) AS artist_key,
    CAST(min(idx) AS INT) AS position
FROM silver.tracks__artists
WHERE id IS NOT NULL
GROUP BY track_id, id
