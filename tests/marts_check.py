"""Recompute the listening-event marts with DuckDB, independently of
soundlake's SQL, from the silver Delta tables (events, and the catalog's
tracks__artists and artists__genres), and compare with the gold marts.

Usage: marts_check.py <lake folder>
Prints one line per mart checked; exits 1 listing every difference.
"""

import math
import os
import sys

import duckdb

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "readers"))
from delta_files import read_parquet  # noqa: E402

lake = sys.argv[1]
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")


def view(name, table, hive=False):
    con.execute(f"CREATE VIEW {name} AS SELECT * FROM {read_parquet(f'{lake}/{table}', hive)}")


view("events", "silver/events", hive=True)
view("track_artists", "silver/tracks__artists")
view("artist_genres", "silver/artists__genres")
view("dim_artist", "gold/dim_artist")
view("dim_genre", "gold/dim_genre")
MARTS = [
    "mart_track_charts",
    "mart_artist_charts",
    "mart_track_engagement",
    "mart_artist_engagement",
    "mart_user_activity",
    "mart_device_geo",
    "mart_listening_patterns",
    "mart_sessions",
    "mart_trending_tracks",
    "mart_user_genre_affinity",
]
for mart in MARTS:
    # The incremental marts are partitioned by day.
    view(mart, f"gold/{mart}", hive=True)

# A play counts once per distinct artist of its track.
con.execute(
    """
    CREATE VIEW event_artists AS
    SELECT DISTINCT e.event_id, e.user_id, e.event_type, e.event_ts, e.track_id, ta.id AS artist_id
    FROM events e JOIN track_artists ta ON ta.track_id = e.track_id
    WHERE ta.id IS NOT NULL
    """
)



def period_counts(subject, source):
    """CTEs ending in `counted`: plays and listeners of each `subject` per
    day, ISO week and month."""
    return f"""
        p AS (SELECT {subject}, user_id, event_ts FROM {source} WHERE event_type = 'play'),
        periods AS (
            SELECT 'day' AS period, event_ts::DATE AS period_start, {subject}, user_id FROM p
            UNION ALL SELECT 'week', date_trunc('week', event_ts)::DATE, {subject}, user_id FROM p
            UNION ALL SELECT 'month', date_trunc('month', event_ts)::DATE, {subject}, user_id FROM p),
        counted AS (
            SELECT period, period_start, {subject}, count(*) AS plays,
                   count(DISTINCT user_id) AS listeners FROM periods GROUP BY ALL)"""


CHECKS = {
    "mart_track_charts": (
        f"""
        WITH {period_counts("track_id", "events")}
        SELECT period, period_start, rank, track_id, plays, listeners FROM (
            SELECT *, row_number() OVER (PARTITION BY period, period_start
                       ORDER BY plays DESC, listeners DESC, track_id) AS rank
            FROM counted)
        WHERE rank <= 100
        """,
        "SELECT period, period_start, chart_rank, track_id, plays, listeners FROM mart_track_charts",
    ),
    # Artist ranks break ties by soundlake's surrogate key, which DuckDB
    # cannot compute: compare each period's artists with their counts.
    "mart_artist_charts": (
        f"""
        WITH {period_counts("artist_id", "event_artists")},
        cut AS (
            SELECT period, period_start, plays, listeners FROM (
                SELECT *, row_number() OVER (PARTITION BY period, period_start
                    ORDER BY plays DESC, listeners DESC) AS r FROM counted) WHERE r = 100)
        SELECT c.period, c.period_start, c.artist_id, c.plays, c.listeners FROM counted c
        LEFT JOIN cut ON cut.period = c.period AND cut.period_start = c.period_start
        WHERE cut.plays IS NULL OR (c.plays, c.listeners) > (cut.plays, cut.listeners)
        """,
        """
        WITH m AS (SELECT m.*, a.artist_id FROM mart_artist_charts m
                   JOIN dim_artist a ON a.artist_key = m.artist_key),
        cut AS (SELECT period, period_start, plays, listeners FROM m WHERE chart_rank = 100)
        SELECT m.period, m.period_start, m.artist_id, m.plays, m.listeners FROM m
        LEFT JOIN cut ON cut.period = m.period AND cut.period_start = m.period_start
        WHERE cut.plays IS NULL OR (m.plays, m.listeners) > (cut.plays, cut.listeners)
        """,
    ),
    "mart_track_engagement": (
        """
        SELECT track_id,
               count(*) FILTER (event_type = 'play') AS plays,
               count(*) FILTER (event_type = 'skip') AS skips,
               count(*) FILTER (event_type = 'complete') AS completes,
               count(*) FILTER (event_type = 'like') AS likes,
               count(DISTINCT user_id) FILTER (event_type = 'play') AS listeners,
               CASE WHEN plays > 0 THEN skips / plays END AS skip_rate,
               CASE WHEN plays > 0 THEN completes / plays END AS completion_rate
        FROM events GROUP BY track_id
        """,
        """SELECT track_id, plays, skips, completes, likes, listeners, skip_rate,
                  completion_rate FROM mart_track_engagement""",
    ),
    "mart_artist_engagement": (
        """
        SELECT artist_id,
               count(*) FILTER (event_type = 'play') AS plays,
               count(*) FILTER (event_type = 'skip') AS skips,
               count(*) FILTER (event_type = 'complete') AS completes,
               count(*) FILTER (event_type = 'like') AS likes,
               count(DISTINCT user_id) FILTER (event_type = 'play') AS listeners,
               count(DISTINCT track_id) FILTER (event_type = 'play') AS tracks_played,
               CASE WHEN plays > 0 THEN skips / plays END AS skip_rate,
               CASE WHEN plays > 0 THEN completes / plays END AS completion_rate
        FROM event_artists GROUP BY artist_id
        """,
        """SELECT a.artist_id, plays, skips, completes, likes, listeners, tracks_played,
                  skip_rate, completion_rate
           FROM mart_artist_engagement m JOIN dim_artist a ON a.artist_key = m.artist_key""",
    ),
    "mart_user_activity": (
        """
        SELECT user_id, event_ts::DATE, count(*),
               count(*) FILTER (event_type = 'play'), count(*) FILTER (event_type = 'skip'),
               count(*) FILTER (event_type = 'like'),
               count(DISTINCT track_id) FILTER (event_type = 'play'),
               min(event_ts), max(event_ts)
        FROM events GROUP BY ALL
        """,
        # Hive partitioning puts the day column last; the contract's order.
        """SELECT user_id, activity_date, events, plays, skips, likes, distinct_tracks,
                  first_event_at, last_event_at
           FROM mart_user_activity""",
    ),
    "mart_device_geo": (
        """
        SELECT event_ts::DATE, coalesce(country, 'unknown'), coalesce(device, 'unknown'),
               count(*) FILTER (event_type = 'play') AS plays,
               count(*) FILTER (event_type = 'skip') AS skips,
               count(DISTINCT user_id), CASE WHEN plays > 0 THEN skips / plays END
        FROM events GROUP BY ALL
        """,
        """SELECT activity_date, country, device, plays, skips, users, skip_rate
           FROM mart_device_geo""",
    ),
    "mart_listening_patterns": (
        """
        WITH days AS (SELECT isodow(event_ts) AS wd, count(DISTINCT event_ts::DATE) AS n
                      FROM events GROUP BY 1)
        SELECT isodow(event_ts) AS wd, hour(event_ts), count(*), count(DISTINCT user_id),
               any_value(days.n), count(*) / any_value(days.n)
        FROM events JOIN days ON days.wd = isodow(event_ts)
        WHERE event_type = 'play' GROUP BY 1, 2
        """,
        "SELECT * FROM mart_listening_patterns",
    ),
    "mart_sessions": (
        """
        WITH o AS (
            SELECT *, CASE WHEN lag(event_ts) OVER w IS NULL
                             OR event_ts - lag(event_ts) OVER w > INTERVAL 30 MINUTE
                      THEN 1 ELSE 0 END AS starts
            FROM events WINDOW w AS (PARTITION BY user_id ORDER BY event_ts, event_id)),
        n AS (SELECT *, sum(starts) OVER (PARTITION BY user_id ORDER BY event_ts, event_id
                  ROWS UNBOUNDED PRECEDING) AS s FROM o)
        SELECT user_id, min(event_ts), max(event_ts),
               round(epoch(max(event_ts)) - epoch(min(event_ts)))::BIGINT, count(*),
               count(*) FILTER (event_type = 'play'),
               count(DISTINCT track_id) FILTER (event_type = 'play'),
               count(*) FILTER (event_type = 'skip'), min(device), min(country)
        FROM n GROUP BY user_id, s
        """,
        """SELECT user_id, started_at, ended_at, duration_seconds, events, plays, tracks, skips,
                  device, country FROM mart_sessions""",
    ),
    "mart_trending_tracks": (
        """
        WITH daily AS (SELECT event_ts::DATE AS day, track_id, count(*) AS plays FROM events
                       WHERE event_type = 'play' GROUP BY ALL),
        w AS (
            SELECT d.day AS as_of, c.track_id,
                   sum(c.plays) FILTER (c.day > d.day - 7) AS recent,
                   coalesce(sum(c.plays) FILTER (c.day <= d.day - 7), 0) AS before
            FROM (SELECT DISTINCT day FROM daily) d
            JOIN daily c ON c.day > d.day - 14 AND c.day <= d.day GROUP BY ALL),
        s AS (SELECT *, (recent - before) / greatest(before, 1) AS growth FROM w
              WHERE recent >= 3)
        SELECT as_of, r, track_id, recent, before, growth FROM (
            SELECT *, row_number() OVER (PARTITION BY as_of
                ORDER BY growth DESC, recent DESC, track_id) AS r FROM s)
        WHERE r <= 50
        """,
        """SELECT as_of, trend_rank, track_id, plays_7d, plays_prev_7d, growth
           FROM mart_trending_tracks""",
    ),
    "mart_user_genre_affinity": (
        """
        WITH p AS (SELECT event_id, user_id, track_id FROM events WHERE event_type = 'play'),
        totals AS (SELECT user_id, count(*) AS total FROM p GROUP BY 1),
        tg AS (SELECT DISTINCT ta.track_id, lower(trim(g.value)) AS genre
               FROM track_artists ta JOIN artist_genres g ON g.artist_id = ta.id
               WHERE trim(g.value) <> ''),
        gp AS (SELECT p.user_id, tg.genre, count(*) AS plays FROM p
               JOIN tg ON tg.track_id = p.track_id GROUP BY ALL)
        SELECT gp.user_id, gp.genre, plays, plays / totals.total,
               row_number() OVER (PARTITION BY gp.user_id ORDER BY plays DESC, gp.genre)
        FROM gp JOIN totals USING (user_id)
        """,
        """SELECT user_id, genre, plays, share_of_plays, affinity_rank
           FROM mart_user_genre_affinity""",
    ),
}


def normal(row):
    return tuple(
        round(v, 9) if isinstance(v, float) and not math.isnan(v) else v for v in row
    )


failures = []
for mart, (expected_sql, actual_sql) in CHECKS.items():
    try:
        expected = sorted((normal(r) for r in con.sql(expected_sql).fetchall()), key=repr)
        actual = sorted((normal(r) for r in con.sql(actual_sql).fetchall()), key=repr)
    except duckdb.Error as e:
        failures.append(f"{mart}: {e}")
        continue
    if not expected:
        failures.append(f"{mart}: DuckDB computed no rows: the check proves nothing")
    elif expected != actual:
        missing = [r for r in expected if r not in actual][:3]
        extra = [r for r in actual if r not in expected][:3]
        failures.append(
            f"{mart}: {len(expected)} rows expected, {len(actual)} in gold; "
            f"missing {missing}; unexpected {extra}"
        )
    else:
        print(f"{mart}: {len(actual)} rows agree")
if failures:
    print("\n".join(failures))
    sys.exit(1)
