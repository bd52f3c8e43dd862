SELECT DISTINCT
    surrogate_key(g.artist_id) AS artist_key,
    surrogate_key(lower(trim(g.value))) AS genre_key
FROM silver.artists__genres g
WHERE trim(g.value) <> ''
