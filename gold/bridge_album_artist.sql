-- Album credits of the crawled albums.
SELECT
    surrogate_key(album_id) AS album_key,
    surrogate_key(id) AS artist_key,
    CAST(min(idx) AS INT) AS position
FROM silver.albums__artists
WHERE id IS NOT NULL
GROUP BY album_id, id
