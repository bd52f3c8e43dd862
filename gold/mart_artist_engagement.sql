-- Skip and completion rates per artist: every event on a track counts for
-- each artist credited on it.
WITH counted AS (
    SELECT
        b.artist_key,
        count(*) FILTER (WHERE e.event_type = 'play') AS plays,
        count(*) FILTER (WHERE e.event_type = 'skip') AS skips,
        count(*) FILTER (WHERE e.event_type = 'complete') AS completes,
        count(*) FILTER (WHERE e.event_type = 'like') AS likes,
        count(DISTINCT e.user_id) FILTER (WHERE e.event_type = 'play') AS listeners,
        count(DISTINCT e.track_id) FILTER (WHERE e.event_type = 'play') AS tracks_played
    FROM silver.events e
    JOIN gold.bridge_track_artist b ON b.track_key = surrogate_key(e.track_id)
    GROUP BY b.artist_key
)
SELECT
    artist_key,
    CAST(plays AS BIGINT) AS plays,
    CAST(skips AS BIGINT) AS skips,
    CAST(completes AS BIGINT) AS completes,
    CAST(likes AS BIGINT) AS likes,
    CAST(listeners AS BIGINT) AS listeners,
    CAST(tracks_played AS BIGINT) AS tracks_played,
    CASE WHEN plays > 0 THEN CAST(skips AS DOUBLE) / plays END AS skip_rate,
    CASE WHEN plays > 0 THEN CAST(completes AS DOUBLE) / plays END AS completion_rate
FROM counted
