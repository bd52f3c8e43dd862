"""Recompute the catalog's gold tables with DuckDB straight from the NDJSON
files a user imported (any of tracks, albums, artists, audio_features;
a missing file is an empty input), independently of soundlake's SQL models,
and print them as JSON: {table: [row, ...]}, rows sorted, every value as
its JSON text. Natural ids stand in for surrogate keys.

Usage: catalog_check.py <folder of .ndjson files>
"""

import json
import os
import sys

import duckdb

ARTIST = "STRUCT(id VARCHAR, name VARCHAR)[]"
IMAGES = "STRUCT(url VARCHAR, width BIGINT, height BIGINT)[]"
INPUTS = {
    "tracks": {
        "id": "VARCHAR",
        "artists": ARTIST,
        "album": f"STRUCT(id VARCHAR, name VARCHAR, album_type VARCHAR, artists {ARTIST}, images {IMAGES})",
    },
    "albums": {
        "id": "VARCHAR",
        "name": "VARCHAR",
        "album_type": "VARCHAR",
        "artists": ARTIST,
        "images": IMAGES,
        "tracks": "STRUCT(items STRUCT(id VARCHAR)[])",
    },
    "artists": {"id": "VARCHAR", "name": "VARCHAR", "genres": "VARCHAR[]"},
    "audio_features": {"id": "VARCHAR"},
}

folder = sys.argv[1]
con = duckdb.connect()
for name, columns in INPUTS.items():
    path = os.path.join(folder, f"{name}.ndjson")
    if os.path.exists(path):
        spec = "{" + ", ".join(f"'{c}': '{t}'" for c, t in columns.items()) + "}"
        con.execute(
            f"CREATE TABLE {name} AS SELECT * FROM read_json('{path}', "
            f"format = 'newline_delimited', columns = {spec})"
        )
    else:
        con.execute(
            f"CREATE TABLE {name} ("
            + ", ".join(f"{c} {t}" for c, t in columns.items())
            + ")"
        )

# A track's album: the one it embeds, or the album whose listing names it.
# A track of no known album is set aside (dim_track_quarantine), and with it
# its credits and features.
con.execute(
    """
    CREATE TABLE dim_track AS
    WITH listed AS (
        SELECT i.id, min(a.id) AS album_id
        FROM albums a, unnest(a.tracks.items) AS u(i) GROUP BY i.id
    )
    SELECT t.id, coalesce(t.album.id, l.album_id) AS album_id
    FROM tracks t LEFT JOIN listed l ON l.id = t.id
    WHERE coalesce(t.album.id, l.album_id) IS NOT NULL
    """
)

# Spotify's album types, as the model documents them: lower case, trimmed,
# "ep" filed under single.
NORMALIZED_TYPE = """
    CASE lower(trim(t)) WHEN 'ep' THEN 'single' ELSE lower(trim(t)) END
"""

# For an album known only from tracks: the track (smallest id) whose
# embedded album gives its credits and images.
UNCRAWLED = """
    uncrawled AS (
        SELECT album.id AS album_id, min(id) AS track_id FROM tracks
        WHERE album.id IS NOT NULL AND album.id NOT IN (SELECT id FROM albums)
        GROUP BY album.id
    )
"""

QUERIES = {
    "dim_album": f"""
        WITH embedded AS (
            SELECT album.id AS id, min(album.name) AS name, min(album.album_type) AS t
            FROM tracks WHERE album.id IS NOT NULL GROUP BY album.id
        ),
        every AS (SELECT id FROM albums UNION SELECT id FROM embedded)
        SELECT e.id, coalesce(a.name, m.name),
               (SELECT {NORMALIZED_TYPE} FROM (SELECT coalesce(a.album_type, m.t) AS t)),
               a.id IS NOT NULL
        FROM every e LEFT JOIN albums a ON a.id = e.id LEFT JOIN embedded m ON m.id = e.id
    """,
    "dim_artist": """
        WITH named AS (
            SELECT unnest(artists, recursive := true) FROM tracks
            UNION ALL SELECT unnest(album.artists, recursive := true) FROM tracks
            UNION ALL SELECT unnest(artists, recursive := true) FROM albums
        ),
        stubs AS (SELECT id, min(name) AS name FROM named WHERE id IS NOT NULL GROUP BY id),
        every AS (SELECT id FROM artists UNION SELECT id FROM stubs)
        SELECT e.id, coalesce(a.name, s.name), a.id IS NOT NULL
        FROM every e LEFT JOIN artists a ON a.id = e.id LEFT JOIN stubs s ON s.id = e.id
    """,
    "dim_track": "SELECT id, album_id FROM dim_track",
    "bridge_track_artist": """
        SELECT t.id, a.artist.id, min(a.position - 1)
        FROM tracks t, unnest(t.artists) WITH ORDINALITY AS a(artist, position)
        WHERE a.artist.id IS NOT NULL AND t.id IN (SELECT id FROM dim_track)
        GROUP BY t.id, a.artist.id
    """,
    "bridge_album_artist": f"""
        WITH {UNCRAWLED},
        credits AS (
            SELECT al.id AS album_id, c.artist.id AS artist_id, c.position
            FROM albums al, unnest(al.artists) WITH ORDINALITY AS c(artist, position)
            UNION ALL
            SELECT u.album_id, c.artist.id, c.position
            FROM uncrawled u JOIN tracks t ON t.id = u.track_id,
                 unnest(t.album.artists) WITH ORDINALITY AS c(artist, position)
        )
        SELECT album_id, artist_id, min(position - 1) FROM credits
        WHERE artist_id IS NOT NULL GROUP BY album_id, artist_id
    """,
    "bridge_album_image": f"""
        WITH {UNCRAWLED},
        images AS (
            SELECT al.id AS album_id, i.image.url AS url, i.position
            FROM albums al, unnest(al.images) WITH ORDINALITY AS i(image, position)
            UNION ALL
            SELECT u.album_id, i.image.url, i.position
            FROM uncrawled u JOIN tracks t ON t.id = u.track_id,
                 unnest(t.album.images) WITH ORDINALITY AS i(image, position)
        )
        SELECT album_id, position - 1, url FROM images WHERE url IS NOT NULL
    """,
    "fact_audio_features": """
        SELECT DISTINCT id FROM audio_features WHERE id IN (SELECT id FROM dim_track)
    """,
    "dim_genre": """
        SELECT lower(trim(g)), count(DISTINCT id)
        FROM (SELECT id, unnest(genres) AS g FROM artists)
        WHERE trim(g) <> '' GROUP BY lower(trim(g))
    """,
}

out = {}
for table, sql in QUERIES.items():
    rows = [
        [json.dumps(v, ensure_ascii=False) for v in row]
        for row in con.execute(sql).fetchall()
    ]
    out[table] = sorted(rows)
print(json.dumps(out, ensure_ascii=False))
