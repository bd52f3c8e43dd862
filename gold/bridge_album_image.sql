-- Cover images: from each crawled album, and for an album known only from
-- the tracks that embed it, from one of those tracks (the smallest id).
WITH uncrawled AS (
    SELECT t.album__id AS album_id, min(t.id) AS track_id
    FROM silver.tracks t
    LEFT JOIN silver.albums c ON c.id = t.album__id
    WHERE t.album__id IS NOT NULL AND c.id IS NULL
    GROUP BY t.album__id
),
images AS (
    SELECT album_id, idx, url, width, height FROM silver.albums__images
    UNION ALL
    SELECT u.album_id, i.idx, i.url, i.width, i.height
    FROM silver.tracks__album__images i
    JOIN uncrawled u ON u.track_id = i.track_id
)
SELECT
    surrogate_key(album_id) AS album_key,
    CAST(idx AS INT) AS position,
    url,
    CAST(width AS INT) AS width,
    CAST(height AS INT) AS height
FROM images
WHERE url IS NOT NULL
