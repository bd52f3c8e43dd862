-- Extended mode only: Development Mode apps are refused audio features,
-- so there this table is empty.
SELECT
    surrogate_key(f.id) AS track_key,
    f.danceability,
    f.energy,
    f.valence,
    f.acousticness,
    f.instrumentalness,
    f.liveness,
    f.speechiness,
    f.loudness,
    f.tempo,
    CAST(f.key AS INT) AS pitch_class,
    f.mode = 1 AS is_major,
    CAST(f.time_signature AS INT) AS time_signature,
    f.duration_ms
FROM silver.audio_features f
WHERE f.id IN (SELECT id FROM silver.tracks)
