-- Similar tracks by sound: one row per track with audio features, its key
-- and the features compared. The [neighbours] step of the .toml z-scores
-- each feature and ranks every other track by cosine similarity. Pitch
-- class is left out: it is a circle of twelve keys, not a quantity.
-- Extended mode only: Development Mode apps are refused audio features,
-- so there this table is empty (similar_tracks_by_listening is not).
SELECT
    track_key,
    danceability,
    energy,
    valence,
    acousticness,
    instrumentalness,
    liveness,
    speechiness,
    loudness,
    tempo,
    CASE WHEN is_major THEN 1.0 ELSE 0.0 END AS major
FROM gold.fact_audio_features
