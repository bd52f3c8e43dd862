-- Every artist of the catalog: those crawled in full (silver.artists) and
-- those only named on tracks and albums (featured artists, the credits of
-- an album a track embeds), which carry a name and nothing else.
WITH named AS (
    SELECT id, name FROM silver.tracks__artists
    UNION ALL
    SELECT id, name FROM silver.tracks__album__artists
    UNION ALL
    SELECT id, name FROM silver.albums__artists
),
stubs AS (
    SELECT id, min(name) AS name FROM named WHERE id IS NOT NULL GROUP BY id
)
SELECT
    surrogate_key(coalesce(a.id, s.id)) AS artist_key,
    coalesce(a.id, s.id) AS artist_id,
    coalesce(a.name, s.name) AS name,
    a.popularity AS popularity,
    a.followers AS followers,
    'https://open.spotify.com/artist/' || coalesce(a.id, s.id) AS spotify_url,
    a.id IS NOT NULL AS is_crawled,
    a._ingested_at AS ingested_at
FROM silver.artists a
FULL OUTER JOIN stubs s ON s.id = a.id
