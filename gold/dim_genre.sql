-- The genres artists are tagged with (Spotify deprecated genres in 2026:
-- often empty, so this table may be).
SELECT
    surrogate_key(lower(trim(value))) AS genre_key,
    lower(trim(value)) AS genre,
    CAST(count(DISTINCT artist_id) AS INT) AS artist_count
FROM silver.artists__genres
WHERE trim(value) <> ''
GROUP BY lower(trim(value))
