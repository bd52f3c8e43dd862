-- Every crawled track, with its album as a key: from the track's embedded
-- album, or (Development Mode, where tracks come from album listings) from
-- the listing that named it: the page an album embeds, or a later page,
-- keyed "<album id>:<offset>". A track of no known album has no album key.
WITH listings AS (
    SELECT id, album_id FROM silver.albums__tracks__items
    UNION ALL
    SELECT id, split_part(page_key, ':', 1) AS album_id FROM silver.album_tracks__items
),
listed AS (
    SELECT id, min(album_id) AS album_id FROM listings WHERE id IS NOT NULL GROUP BY id
)
SELECT
    surrogate_key(t.id) AS track_key,
    t.id AS track_id,
    CASE
        WHEN coalesce(t.album__id, l.album_id) IS NOT NULL
        THEN surrogate_key(coalesce(t.album__id, l.album_id))
    END AS album_key,
    t.name AS name,
    CAST(t.disc_number AS INT) AS disc_number,
    CAST(t.track_number AS INT) AS track_number,
    t.duration_ms AS duration_ms,
    t.explicit AS explicit,
    t.popularity AS popularity,
    t.isrc AS isrc,
    'https://open.spotify.com/track/' || t.id AS spotify_url,
    t._ingested_at AS ingested_at
FROM silver.tracks t
LEFT JOIN listed l ON l.id = t.id
