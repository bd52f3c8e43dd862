SELECT
    surrogate_key(album_id) AS album_key,
    CAST(idx AS INT) AS position,
    url,
    CAST(width AS INT) AS width,
    CAST(height AS INT) AS height
FROM silver.albums__images
WHERE url IS NOT NULL
