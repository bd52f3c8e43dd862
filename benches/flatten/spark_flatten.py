"""The PySpark baseline, as the seeds ran it: local mode on every core, the
generated landing NDJSON flattened with DataFrames into the tables soundlake's
silver layer writes (same rows, same columns, zstd Parquet).

usage: spark_flatten.py LANDING_DIR OUT_DIR inferred|explicit

`inferred` lets Spark scan each file to infer its schema (what a first
pipeline does); `explicit` hands it the schema, skipping that pass. Prints
{"startup_s": …, "job_s": …} on stdout.
"""

import json
import sys
import time

T0 = time.perf_counter()

from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

def struct(fields):
    return "STRUCT<" + ", ".join(f"{n}: {t}" for n, t in fields) + ">"


def ddl(fields):
    return ", ".join(f"{n} {t}" for n, t in fields)


URLS = "STRUCT<spotify: STRING>"
ARTIST = struct([("external_urls", URLS), ("href", "STRING"), ("id", "STRING"),
                 ("name", "STRING"), ("type", "STRING"), ("uri", "STRING")])
IMAGE = "STRUCT<height: BIGINT, url: STRING, width: BIGINT>"
TRACK = [
    ("artists", f"ARRAY<{ARTIST}>"), ("available_markets", "ARRAY<STRING>"),
    ("disc_number", "BIGINT"), ("duration_ms", "BIGINT"), ("explicit", "BOOLEAN"),
    ("external_urls", URLS), ("href", "STRING"), ("id", "STRING"), ("name", "STRING"),
    ("preview_url", "STRING"), ("track_number", "BIGINT"), ("type", "STRING"), ("uri", "STRING"),
]
ALBUM = [
    ("album_type", "STRING"), ("artists", f"ARRAY<{ARTIST}>"), ("available_markets", "ARRAY<STRING>"),
    ("external_urls", URLS), ("href", "STRING"), ("id", "STRING"), ("images", f"ARRAY<{IMAGE}>"),
    ("name", "STRING"), ("release_date", "STRING"), ("release_date_precision", "STRING"),
    ("total_tracks", "BIGINT"), ("type", "STRING"), ("uri", "STRING"),
]
PAGE = [("href", "STRING"), ("items", f"ARRAY<{struct(TRACK)}>"), ("limit", "BIGINT"),
        ("next", "STRING"), ("offset", "BIGINT"), ("previous", "STRING"), ("total", "BIGINT")]
SCHEMAS = {
    "artists": ddl([
        ("external_urls", URLS), ("followers", "STRUCT<href: STRING, total: BIGINT>"),
        ("genres", "ARRAY<STRING>"), ("href", "STRING"), ("id", "STRING"),
        ("images", f"ARRAY<{IMAGE}>"), ("name", "STRING"), ("popularity", "BIGINT"),
        ("type", "STRING"), ("uri", "STRING"),
    ]),
    "albums": ddl(ALBUM + [
        ("copyrights", "ARRAY<STRUCT<text: STRING, type: STRING>>"),
        ("external_ids", "STRUCT<upc: STRING>"), ("genres", "ARRAY<STRING>"),
        ("label", "STRING"), ("popularity", "BIGINT"), ("tracks", struct(PAGE)),
    ]),
    "tracks": ddl(TRACK + [
        ("album", struct(ALBUM)), ("external_ids", "STRUCT<isrc: STRING>"), ("popularity", "BIGINT"),
    ]),
    "audio_features": ddl([
        ("acousticness", "DOUBLE"), ("analysis_url", "STRING"), ("danceability", "DOUBLE"),
        ("duration_ms", "BIGINT"), ("energy", "DOUBLE"), ("id", "STRING"),
        ("instrumentalness", "DOUBLE"), ("key", "BIGINT"), ("liveness", "DOUBLE"),
        ("loudness", "DOUBLE"), ("mode", "BIGINT"), ("speechiness", "DOUBLE"), ("tempo", "DOUBLE"),
        ("time_signature", "BIGINT"), ("track_href", "STRING"), ("type", "STRING"),
        ("uri", "STRING"), ("valence", "DOUBLE"),
    ]),
}

ARTIST_COLUMNS = ["external_urls.spotify AS external_urls__spotify", "href", "id", "name", "type", "uri"]
IMAGE_COLUMNS = ["height", "url", "width"]


def children(df, parent_key, array, columns):
    """One row per element of `array`: the parent's key, the 0-based
    position `idx`, then `columns` of the element."""
    exploded = df.select(F.col("id").alias(parent_key), F.posexplode(array).alias("idx", "item"))
    return exploded.selectExpr(parent_key, "idx", *[f"item.{c}" for c in columns])


def release_date(col):
    return F.expr(
        f"to_date(CASE length({col}) WHEN 4 THEN {col} || '-01-01' "
        f"WHEN 7 THEN {col} || '-01' ELSE {col} END)"
    )


def tables(src):
    artists, albums, tracks, features = (src[s] for s in ("artists", "albums", "tracks", "audio_features"))
    track_items = albums.select(F.col("id").alias("album_id"), F.posexplode("tracks.items").alias("tracks__items_idx", "t"))
    return {
        "artists": artists.selectExpr(
            "id", "external_urls.spotify AS external_urls__spotify", "followers.total AS followers",
            "href", "name", "popularity", "type", "uri"),
        "artists__genres": artists.select(F.col("id").alias("artist_id"), F.posexplode("genres").alias("idx", "value")),
        "artists__images": children(artists, "artist_id", "images", IMAGE_COLUMNS),
        "albums": albums.select(
            "id", "album_type", "available_markets", F.col("external_urls.spotify").alias("external_urls__spotify"),
            "href", "label", "name", "popularity", release_date("release_date").alias("release_date"),
            "release_date_precision", "total_tracks", F.col("tracks.href").alias("tracks__href"),
            F.col("tracks.limit").alias("tracks__limit"), F.col("tracks.next").alias("tracks__next"),
            F.col("tracks.offset").alias("tracks__offset"), F.col("tracks.previous").alias("tracks__previous"),
            F.col("tracks.total").alias("tracks__total"), "type", F.col("external_ids.upc").alias("upc"), "uri"),
        "albums__artists": children(albums, "album_id", "artists", ARTIST_COLUMNS),
        "albums__copyrights": children(albums, "album_id", "copyrights", ["text", "type"]),
        "albums__images": children(albums, "album_id", "images", IMAGE_COLUMNS),
        "albums__tracks__items": track_items.selectExpr(
            "album_id", "tracks__items_idx AS idx", "t.available_markets", "t.disc_number", "t.duration_ms",
            "t.explicit", "t.external_urls.spotify AS external_urls__spotify", "t.href", "t.id", "t.name",
            "t.preview_url", "t.track_number", "t.type", "t.uri"),
        "albums__tracks__items__artists": track_items.select(
            "album_id", "tracks__items_idx", F.posexplode("t.artists").alias("idx", "a")).selectExpr(
            "album_id", "tracks__items_idx", "idx", *[f"a.{c}" for c in ARTIST_COLUMNS]),
        "tracks": tracks.select(
            "id", *[F.col(f"album.{c}").alias(f"album__{c}") for c in (
                "album_type", "available_markets")],
            F.col("album.external_urls.spotify").alias("album__external_urls__spotify"),
            *[F.col(f"album.{c}").alias(f"album__{c}") for c in ("href", "id", "name")],
            release_date("album.release_date").alias("album__release_date"),
            *[F.col(f"album.{c}").alias(f"album__{c}") for c in (
                "release_date_precision", "total_tracks", "type", "uri")],
            "available_markets", "disc_number", "duration_ms", "explicit",
            F.col("external_urls.spotify").alias("external_urls__spotify"), "href",
            F.col("external_ids.isrc").alias("isrc"), "name", "popularity", "preview_url",
            "track_number", "type", "uri"),
        "tracks__artists": children(tracks, "track_id", "artists", ARTIST_COLUMNS),
        "tracks__album__artists": children(tracks, "track_id", "album.artists", ARTIST_COLUMNS),
        "tracks__album__images": children(tracks, "track_id", "album.images", IMAGE_COLUMNS),
        "audio_features": features.select(
            "id", "acousticness", "analysis_url", "danceability", "duration_ms", "energy",
            "instrumentalness", "key", "liveness", "loudness", "mode", "speechiness", "tempo",
            "time_signature", "track_href", "type", "uri", "valence"),
    }


def main():
    landing, out, schema = sys.argv[1], sys.argv[2], sys.argv[3]
    spark = (
        SparkSession.builder.master("local[*]")
        .appName("soundlake-bench")
        .config("spark.driver.memory", "4g")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.compression.codec", "zstd")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    started = time.perf_counter()
    src = {
        name: spark.read.json(f"{landing}/{name}.ndjson", schema=SCHEMAS[name] if schema == "explicit" else None)
        for name in SCHEMAS
    }
    for table, df in tables(src).items():
        df.write.mode("overwrite").parquet(f"{out}/{table}")
    done = time.perf_counter()
    spark.stop()
    print(json.dumps({"startup_s": started - T0, "job_s": done - started}))


if __name__ == "__main__":
    main()
