"""The DuckDB baseline: the generated landing NDJSON flattened in SQL into the
tables soundlake's silver layer writes (same rows, same columns, zstd
Parquet, one file per table). DuckDB infers each file's schema from a sample
and uses every core.

usage: duckdb_flatten.py LANDING_DIR OUT_DIR stream|memory

`stream` reads each file once per table it feeds (views: little memory);
`memory` loads each file once into an in-memory table first (faster, and
as much memory as the data takes).
"""

import sys
from pathlib import Path

import duckdb

ARTIST = """{p}.external_urls.spotify AS external_urls__spotify, {p}.href, {p}.id,
    {p}.name, {p}.type, {p}.uri"""
IMAGE = "{p}.height, {p}.url, {p}.width"


def children(parent_key, source, array, item, columns):
    """One row per element of `array`, with the parent's key and the
    element's 0-based position."""
    return f"""SELECT {parent_key}, idx, {columns.format(p=item)} FROM (
        SELECT id AS {parent_key}, generate_subscripts({array}, 1) - 1 AS idx,
               unnest({array}) AS {item}
        FROM {source})"""


def release_date(col):
    return f"""CAST(strptime(CASE length({col}) WHEN 4 THEN {col} || '-01-01'
        WHEN 7 THEN {col} || '-01' ELSE {col} END, '%Y-%m-%d') AS DATE)"""


TABLES = {
    "artists": """SELECT id, external_urls.spotify AS external_urls__spotify,
        followers.total AS followers, href, name, popularity, type, uri FROM artists""",
    "artists__genres": """SELECT artist_id, idx, value FROM (
        SELECT id AS artist_id, generate_subscripts(genres, 1) - 1 AS idx,
               unnest(genres) AS value FROM artists)""",
    "artists__images": children("artist_id", "artists", "images", "i", IMAGE),
    "albums": f"""SELECT id, album_type, available_markets,
        external_urls.spotify AS external_urls__spotify, href, label, name, popularity,
        {release_date('release_date')} AS release_date, release_date_precision,
        total_tracks, tracks.href AS tracks__href, tracks."limit" AS tracks__limit,
        tracks."next" AS tracks__next, tracks."offset" AS tracks__offset,
        tracks.previous AS tracks__previous, tracks.total AS tracks__total, type,
        external_ids.upc AS upc, uri FROM albums""",
    "albums__artists": children("album_id", "albums", "artists", "a", ARTIST),
    "albums__copyrights": children("album_id", "albums", "copyrights", "c", "{p}.text, {p}.type"),
    "albums__images": children("album_id", "albums", "images", "i", IMAGE),
    "albums__tracks__items": children(
        "album_id",
        "albums",
        "tracks.items",
        "t",
        """{p}.available_markets, {p}.disc_number, {p}.duration_ms, {p}.explicit,
        {p}.external_urls.spotify AS external_urls__spotify, {p}.href, {p}.id, {p}.name,
        {p}.preview_url, {p}.track_number, {p}.type, {p}.uri""",
    ),
    "albums__tracks__items__artists": f"""SELECT album_id, tracks__items_idx, idx,
        {ARTIST.format(p='a')} FROM (
        SELECT album_id, tracks__items_idx, generate_subscripts(t.artists, 1) - 1 AS idx,
               unnest(t.artists) AS a FROM (
            SELECT id AS album_id, generate_subscripts(tracks.items, 1) - 1 AS tracks__items_idx,
                   unnest(tracks.items) AS t FROM albums))""",
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
    "tracks__artists": children("track_id", "tracks", "artists", "a", ARTIST),
    "tracks__album__artists": children("track_id", "tracks", "album.artists", "a", ARTIST),
    "tracks__album__images": children("track_id", "tracks", "album.images", "i", IMAGE),
    # DuckDB 2.0 types `key` DOUBLE although every value is an integer:
    # cast back, so the column matches soundlake's (and Spotify's) integer.
    "audio_features": """SELECT id, acousticness, analysis_url, danceability, duration_ms,
        energy, instrumentalness, CAST(key AS BIGINT) AS key, liveness, loudness, mode,
        speechiness, tempo, time_signature, track_href, type, uri, valence FROM audio_features""",
}


def main():
    landing, out, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    kind = {"stream": "VIEW", "memory": "TABLE"}[mode]
    for source in ("artists", "albums", "tracks", "audio_features"):
        con.execute(
            f"CREATE {kind} {source} AS SELECT * FROM read_ndjson_auto('{landing / source}.ndjson')"
        )
    for table, sql in TABLES.items():
        con.execute(f"COPY ({sql}) TO '{out / table}.parquet' (FORMAT parquet, COMPRESSION zstd)")


if __name__ == "__main__":
    main()
