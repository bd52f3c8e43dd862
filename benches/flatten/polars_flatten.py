"""The Polars baseline: the generated landing NDJSON flattened with Polars
expressions into the tables soundlake's silver layer writes (same rows, same
columns, zstd Parquet, one file per table). Polars infers each file's schema
from all of its lines (from a sample, a field null at first would be typed
null and fail later) and uses every core.

usage: polars_flatten.py LANDING_DIR OUT_DIR lazy|memory

`lazy` scans each file once per table it feeds (`scan_ndjson`, streaming
the output with `sink_parquet`); `memory` reads each file once into a data
frame first (faster, and as much memory as the data takes).
"""

import sys
from pathlib import Path

import polars as pl

SOURCES = ("artists", "albums", "tracks", "audio_features")


def field(struct, name, alias=None):
    """`struct.name` (a path of struct fields separated by dots)."""
    expr = pl.col(struct)
    for part in name.split("."):
        expr = expr.struct.field(part)
    return expr.alias(alias or f"{struct}__{name.replace('.', '__')}")


def artist(item):
    return [
        field(item, "external_urls.spotify", "external_urls__spotify"),
        *(field(item, c, c) for c in ("href", "id", "name", "type", "uri")),
    ]


def image(item):
    return [field(item, c, c) for c in ("height", "url", "width")]


def children(frame, parent_key, array, item, columns, keep=()):
    """One row per element of `array` (an expression), with the parent's key
    and the element's 0-based position; empty and missing arrays give none."""
    return (
        frame.select(
            *keep,
            pl.col("id").alias(parent_key),
            array.alias(item),
            pl.int_ranges(array.list.len()).alias("idx"),
        )
        .explode([item, "idx"])
        .filter(pl.col("idx").is_not_null())
        .select(*keep, parent_key, "idx", *columns(item))
    )


def release_date(expr):
    text = (
        pl.when(expr.str.len_chars() == 4)
        .then(expr + "-01-01")
        .when(expr.str.len_chars() == 7)
        .then(expr + "-01")
        .otherwise(expr)
    )
    return text.str.to_date("%Y-%m-%d")


def tables(src):
    artists, albums, tracks, features = (src[s] for s in SOURCES)
    track_items = children(
        albums,
        "album_id",
        pl.col("tracks").struct.field("items"),
        "t",
        lambda t: [pl.col(t)],
    ).rename({"idx": "tracks__items_idx"})
    return {
        "artists": artists.select(
            "id",
            field("external_urls", "spotify"),
            field("followers", "total", "followers"),
            "href", "name", "popularity", "type", "uri",
        ),
        "artists__genres": children(
            artists, "artist_id", pl.col("genres"), "value", lambda v: [pl.col(v)]
        ),
        "artists__images": children(artists, "artist_id", pl.col("images"), "i", image),
        "albums": albums.select(
            "id", "album_type", "available_markets",
            field("external_urls", "spotify"),
            "href", "label", "name", "popularity",
            release_date(pl.col("release_date")).alias("release_date"),
            "release_date_precision", "total_tracks",
            *(field("tracks", c) for c in ("href", "limit", "next", "offset", "previous", "total")),
            "type",
            field("external_ids", "upc", "upc"),
            "uri",
        ),
        "albums__artists": children(albums, "album_id", pl.col("artists"), "a", artist),
        "albums__copyrights": children(
            albums, "album_id", pl.col("copyrights"), "c",
            lambda c: [field(c, "text", "text"), field(c, "type", "type")],
        ),
        "albums__images": children(albums, "album_id", pl.col("images"), "i", image),
        "albums__tracks__items": track_items.select(
            "album_id",
            pl.col("tracks__items_idx").alias("idx"),
            *(field("t", c, c) for c in ("available_markets", "disc_number", "duration_ms", "explicit")),
            field("t", "external_urls.spotify", "external_urls__spotify"),
            *(field("t", c, c) for c in ("href", "id", "name", "preview_url", "track_number", "type", "uri")),
        ),
        "albums__tracks__items__artists": track_items.select(
            pl.col("album_id").alias("id"), "tracks__items_idx", "t"
        ).pipe(
            lambda f: children(
                f, "album_id", field("t", "artists", "a"), "a", artist, keep=("tracks__items_idx",)
            )
        ).select("album_id", "tracks__items_idx", "idx", *(c for c in (
            "external_urls__spotify", "href", "id", "name", "type", "uri"))),
        "tracks": tracks.select(
            "id",
            *(field("album", c) for c in ("album_type", "available_markets", "external_urls.spotify",
                                          "href", "id", "name")),
            release_date(pl.col("album").struct.field("release_date")).alias("album__release_date"),
            *(field("album", c) for c in ("release_date_precision", "total_tracks", "type", "uri")),
            "available_markets", "disc_number", "duration_ms", "explicit",
            field("external_urls", "spotify"),
            "href",
            field("external_ids", "isrc", "isrc"),
            "name", "popularity", "preview_url", "track_number", "type", "uri",
        ),
        "tracks__artists": children(tracks, "track_id", pl.col("artists"), "a", artist),
        "tracks__album__artists": children(
            tracks, "track_id", pl.col("album").struct.field("artists"), "a", artist
        ),
        "tracks__album__images": children(
            tracks, "track_id", pl.col("album").struct.field("images"), "i", image
        ),
        "audio_features": features.with_columns(pl.col("key").cast(pl.Int64)),
    }


def main():
    landing, out, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    out.mkdir(parents=True, exist_ok=True)
    src = {}
    for source in SOURCES:
        path = landing / f"{source}.ndjson"
        if mode == "memory":
            src[source] = pl.read_ndjson(path, infer_schema_length=None).lazy()
        else:
            src[source] = pl.scan_ndjson(path, infer_schema_length=None)
    for table, frame in tables(src).items():
        frame.sink_parquet(out / f"{table}.parquet", compression="zstd")


if __name__ == "__main__":
    main()
