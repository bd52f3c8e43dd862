SELECT
    surrogate_key(artist_id) AS artist_key,
    CAST(idx AS INT) AS position,
    url,
    CAST(width AS INT) AS width,
    CAST(height AS INT) AS height
FROM silver.artists__images
WHERE url IS NOT NULL
