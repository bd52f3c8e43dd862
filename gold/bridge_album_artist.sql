-- Album credits: from each crawled album, and for an album known only from
-- the tracks that embed it, from one of those tracks (the smallest id), so
-- the credits of one album never mix two of its versions.
WITH uncrawled AS (
    SELECT t.album__id AS album_id, min(t.id) AS track_id
    FROM silver.tracks t
    LEFT JOIN silver.albums c ON c.id = t.album__id
    WHERE t.album__id IS NOT NULL AND c.id IS NULL
    GROUP BY t.album__id
),
credits AS (
    SELECT album_id, id, idx FROM silver.albums__artists
    UNION ALL
    SELECT u.album_id, a.id, a.idx
    FROM silver.tracks__album__artists a
    JOIN uncrawled u ON u.track_id = a.track_id
)
SELECT
    surrogate_key(album_id) AS album_key,
    surrogate_key(id) AS artist_key,
    CAST(min(idx) AS INT) AS position
FROM credits
WHERE id IS NOT NULL
GROUP BY album_id, id
