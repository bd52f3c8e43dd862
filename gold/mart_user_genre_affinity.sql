-- Each user's taste by genre: plays of tracks whose artists carry the
-- genre (a play counts once per genre however many of the track's artists
-- carry it), and that genre's share of all the user's plays.
WITH plays AS (
    SELECT user_id, surrogate_key(track_id) AS track_key
    FROM silver.events
    WHERE event_type = 'play'
),
totals AS (
    SELECT user_id, count(*) AS total_plays FROM plays GROUP BY user_id
),
track_genres AS (
    SELECT DISTINCT b.track_key, g.genre_key
    FROM gold.bridge_track_artist b
    JOIN gold.bridge_artist_genre g ON g.artist_key = b.artist_key
),
genre_plays AS (
    SELECT p.user_id, tg.genre_key, count(*) AS plays
    FROM plays p
    JOIN track_genres tg ON tg.track_key = p.track_key
    GROUP BY p.user_id, tg.genre_key
)
SELECT
    gp.user_id,
    gp.genre_key,
    d.genre,
    CAST(gp.plays AS BIGINT) AS plays,
    CAST(gp.plays AS DOUBLE) / t.total_plays AS share_of_plays,
    CAST(row_number() OVER (
        PARTITION BY gp.user_id ORDER BY gp.plays DESC, d.genre
    ) AS INT) AS affinity_rank
FROM genre_plays gp
JOIN totals t ON t.user_id = gp.user_id
JOIN gold.dim_genre d ON d.genre_key = gp.genre_key
