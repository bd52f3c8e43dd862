"""The chDB baseline: ClickHouse's engine in process, the generated landing
NDJSON flattened in ClickHouse SQL into the tables soundlake's silver layer
writes (same rows, same columns, zstd Parquet, one file per table).
ClickHouse infers each file's schema (nested objects as named tuples) from
all of its lines and uses every core.

usage: chdb_flatten.py LANDING_DIR OUT_DIR stream|memory

`stream` reads each file once per table it feeds; `memory` loads each file
once into an in-memory table first.
"""

import sys
from pathlib import Path

from chdb import session

SOURCES = ("artists", "albums", "tracks", "audio_features")
ARTIST = ["external_urls.spotify AS external_urls__spotify", "href", "id", "name", "type", "uri"]
IMAGE = ["height", "url", "width"]


def fields(item, columns):
    """`item.column` for each column (`a.b AS c` keeps its alias)."""
    out = []
    for column in columns:
        path, _, alias = column.partition(" AS ")
        out.append(f"{item}.{path} AS {alias or path}")
    return ", ".join(out)


def children(parent_key, source, array, item, columns):
    """One row per element of `array`, with the parent's key and the
    element's 0-based position; empty arrays give none."""
    # Qualified: in ClickHouse an alias (the element's `id`) shadows the
    # source's column of that name everywhere in the SELECT.
    return f"""SELECT {source}.id AS {parent_key}, i - 1 AS idx, {fields(item, columns)}
        FROM {source} ARRAY JOIN {array} AS {item}, arrayEnumerate({array}) AS i"""


def release_date(col):
    # Date32: ClickHouse's Date starts in 1970, and albums are older.
    return f"""toDate32(multiIf(length({col}) = 4, {col} || '-01-01',
        length({col}) = 7, {col} || '-01', {col}))"""


TRACK_ITEM = [
    "available_markets", "disc_number", "duration_ms", "explicit",
    "external_urls.spotify AS external_urls__spotify", "href", "id", "name",
    "preview_url", "track_number", "type", "uri",
]

TABLES = {
    "artists": """SELECT id, external_urls.spotify AS external_urls__spotify,
        followers.total AS followers, href, name, popularity, type, uri FROM artists""",
    "artists__genres": """SELECT id AS artist_id, i - 1 AS idx, value
        FROM artists ARRAY JOIN genres AS value, arrayEnumerate(genres) AS i""",
    "artists__images": children("artist_id", "artists", "images", "x", IMAGE),
    "albums": f"""SELECT id, album_type, available_markets,
        external_urls.spotify AS external_urls__spotify, href, label, name, popularity,
        {release_date('albums.release_date')} AS release_date, release_date_precision,
        total_tracks, tracks.href AS tracks__href, tracks.limit AS tracks__limit,
        tracks.next AS tracks__next, tracks.offset AS tracks__offset,
        tracks.previous AS tracks__previous, tracks.total AS tracks__total, type,
        external_ids.upc AS upc, uri FROM albums""",
    "albums__artists": children("album_id", "albums", "artists", "x", ARTIST),
    "albums__copyrights": children("album_id", "albums", "copyrights", "x", ["text", "type"]),
    "albums__images": children("album_id", "albums", "images", "x", IMAGE),
    "albums__tracks__items": children("album_id", "albums", "tracks.items", "x", TRACK_ITEM),
    "albums__tracks__items__artists": f"""SELECT album_id, tracks__items_idx, j - 1 AS idx,
        {fields('a', ARTIST)} FROM (
            SELECT id AS album_id, i - 1 AS tracks__items_idx, t.artists AS artists
            FROM albums ARRAY JOIN tracks.items AS t, arrayEnumerate(tracks.items) AS i)
        ARRAY JOIN artists AS a, arrayEnumerate(artists) AS j""",
    "tracks": f"""SELECT id, album.album_type AS album__album_type,
        album.available_markets AS album__available_markets,
        album.external_urls.spotify AS album__external_urls__spotify,
        album.href AS album__href, album.id AS album__id, album.name AS album__name,
        {release_date('album.release_date')} AS album__release_date,
        album.release_date_precision AS album__release_date_precision,
        album.total_tracks AS album__total_tracks, album.type AS album__type,
        album.uri AS album__uri, available_markets, disc_number, duration_ms, explicit,
        external_urls.spotify AS external_urls__spotify, href,
        external_ids.isrc AS isrc, name, popularity, preview_url, track_number, type, uri
        FROM tracks""",
    "tracks__artists": children("track_id", "tracks", "artists", "x", ARTIST),
    "tracks__album__artists": children("track_id", "tracks", "album.artists", "x", ARTIST),
    "tracks__album__images": children("track_id", "tracks", "album.images", "x", IMAGE),
    "audio_features": """SELECT id, acousticness, analysis_url, danceability, duration_ms,
        energy, instrumentalness, key, liveness, loudness, mode, speechiness, tempo,
        time_signature, track_href, type, uri, valence FROM audio_features""",
}

# Infer from every line: a field null in a sample would be typed as text.
SETTINGS = (
    "SETTINGS input_format_max_rows_to_read_for_schema_inference = 1000000000, "
    "input_format_max_bytes_to_read_for_schema_inference = 100000000000, "
    "output_format_parquet_compression_method = 'zstd'"
)


def main():
    landing, out, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    out.mkdir(parents=True, exist_ok=True)
    db = session.Session()
    kind = {"stream": "VIEW", "memory": "TABLE"}[mode]
    engine = " ENGINE = Memory" if mode == "memory" else ""
    for source in SOURCES:
        db.query(
            f"CREATE {kind} {source}{engine} AS "
            f"SELECT * FROM file('{landing / source}.ndjson', 'JSONEachRow') {SETTINGS}"
        )
    for table, sql in TABLES.items():
        db.query(
            f"INSERT INTO FUNCTION file('{out / table}.parquet', 'Parquet') {sql} {SETTINGS}"
        )


if __name__ == "__main__":
    main()
