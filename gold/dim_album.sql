-- Every album of the catalog: crawled in full (silver.albums) or known
-- from the album object embedded in a track.
WITH embedded AS (
    SELECT
        album__id AS id,
        min(album__name) AS name,
        min(album__album_type) AS album_type,
        min(album__release_date) AS release_date,
        min(album__release_date_precision) AS release_date_precision,
        max(album__total_tracks) AS total_tracks
    FROM silver.tracks
    WHERE album__id IS NOT NULL
    GROUP BY album__id
)
SELECT
    surrogate_key(coalesce(a.id, e.id)) AS album_key,
    coalesce(a.id, e.id) AS album_id,
    coalesce(a.name, e.name) AS name,
    -- Real responses spell album types in other cases, and some say "EP",
    -- which Spotify files under single.
    CASE lower(trim(coalesce(a.album_type, e.album_type)))
        WHEN 'ep' THEN 'single'
        ELSE lower(trim(coalesce(a.album_type, e.album_type)))
    END AS album_type,
    coalesce(a.release_date, e.release_date) AS release_date,
    lower(trim(coalesce(a.release_date_precision, e.release_date_precision))) AS release_date_precision,
    CAST(date_part('year', coalesce(a.release_date, e.release_date)) AS INT) AS release_year,
    CAST(coalesce(a.total_tracks, e.total_tracks) AS INT) AS total_tracks,
    a.label AS label,
    a.popularity AS popularity,
    a.upc AS upc,
    'https://open.spotify.com/album/' || coalesce(a.id, e.id) AS spotify_url,
    a.id IS NOT NULL AS is_crawled,
    a._ingested_at AS ingested_at
FROM silver.albums a
FULL OUTER JOIN embedded e ON e.id = a.id
