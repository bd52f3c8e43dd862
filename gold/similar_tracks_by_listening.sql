-- Similar tracks by listening: tracks played in the same sessions. A
-- session is mart_sessions' (a user's events with no gap over 30
-- minutes). Two tracks score the cosine similarity of the sets of
-- sessions that played them, together / sqrt(sessions of one * sessions
-- of the other), so a hit played everywhere is not everyone's neighbour.
-- Pairs met in a single session are chance and left out. Only the
-- user's own events are read: this works in Development Mode too.
WITH ordered AS (
    SELECT
        user_id, event_id, event_ts, event_type, track_id,
        lag(event_ts) OVER (PARTITION BY user_id ORDER BY event_ts, event_id) AS previous_ts
    FROM silver.events
),
numbered AS (
    SELECT
        user_id, event_type, track_id,
        sum(CASE WHEN previous_ts IS NULL
                      OR date_part('epoch', event_ts) - date_part('epoch', previous_ts) > 1800
                 THEN 1 ELSE 0 END) OVER (
            PARTITION BY user_id ORDER BY event_ts, event_id
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS session_number
    FROM ordered
),
played AS (
    SELECT DISTINCT user_id, session_number, surrogate_key(track_id) AS track_key
    FROM numbered
    WHERE event_type = 'play' AND track_id IS NOT NULL
),
sessions AS (
    SELECT track_key, count(*) AS sessions
    FROM played
    GROUP BY track_key
),
together AS (
    SELECT a.track_key, b.track_key AS neighbour_track_key, count(*) AS sessions
    FROM played a
    JOIN played b
      ON a.user_id = b.user_id
     AND a.session_number = b.session_number
     AND a.track_key <> b.track_key
    GROUP BY a.track_key, b.track_key
    HAVING count(*) >= 2
),
scored AS (
    SELECT
        t.track_key,
        t.neighbour_track_key,
        t.sessions / sqrt(CAST(x.sessions AS DOUBLE) * y.sessions) AS score
    FROM together t
    JOIN sessions x ON x.track_key = t.track_key
    JOIN sessions y ON y.track_key = t.neighbour_track_key
),
ranked AS (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY track_key ORDER BY score DESC, neighbour_track_key
        ) AS rank
    FROM scored
)
SELECT track_key, CAST(rank AS INT) AS rank, neighbour_track_key, score, 'listening' AS method
FROM ranked
WHERE rank <= 20
