"""The dlt baseline: dlt, the loader of the stack soundlake replaces,
normalizes the landing NDJSON into Parquet tables as its users run it (a
nested object's fields as `parent__field` columns, each list as a child
table linked to its parent by `_dlt_parent_id`, with `_dlt_list_idx` for
positions); then one DuckDB statement per table gives the result the names
and types of soundlake's silver tables (the parent's id as a column, dates
as dates): the step those users write in dbt.

usage: dlt_flatten.py LANDING_DIR OUT_DIR normalize

dlt's type detection is off, so text stays text (a release date of "2020"
and one of "2020-05-13" share their column, as they do in soundlake).
"""

import json
import sys
from pathlib import Path

import dlt
import duckdb

SOURCES = ["artists", "albums", "tracks", "audio_features"]


def release_date(col):
    return f"""CAST(strptime(CASE length({col}) WHEN 4 THEN {col} || '-01-01'
        WHEN 7 THEN {col} || '-01' ELSE {col} END, '%Y-%m-%d') AS DATE)"""


def child(table, parent, parent_key, columns):
    """A child table with its parent's id and its own position."""
    return f"""SELECT p.id AS {parent_key}, c._dlt_list_idx AS idx, {columns}
        FROM {table} c JOIN {parent} p ON c._dlt_parent_id = p._dlt_id"""


TABLES = {
    "artists": "SELECT *, followers__total AS followers FROM artists",
    "artists__genres": child("artists__genres", "artists", "artist_id", "c.value"),
    "artists__images": child("artists__images", "artists", "artist_id", "c.height, c.url, c.width"),
    "albums": f"""SELECT * REPLACE ({release_date('release_date')} AS release_date),
        external_ids__upc AS upc FROM albums""",
    "albums__artists": child("albums__artists", "albums", "album_id", "c.*"),
    "albums__copyrights": child("albums__copyrights", "albums", "album_id", "c.text, c.type"),
    "albums__images": child("albums__images", "albums", "album_id", "c.height, c.url, c.width"),
    "albums__tracks__items": child("albums__tracks__items", "albums", "album_id", "c.*"),
    "albums__tracks__items__artists": """SELECT r.id AS album_id,
        p._dlt_list_idx AS tracks__items_idx, c._dlt_list_idx AS idx, c.*
        FROM albums__tracks__items__artists c
        JOIN albums__tracks__items p ON c._dlt_parent_id = p._dlt_id
        JOIN albums r ON p._dlt_parent_id = r._dlt_id""",
    "tracks": f"""SELECT * REPLACE ({release_date('album__release_date')} AS album__release_date),
        external_ids__isrc AS isrc FROM tracks""",
    "tracks__artists": child("tracks__artists", "tracks", "track_id", "c.*"),
    "tracks__album__artists": child("tracks__album__artists", "tracks", "track_id", "c.*"),
    "tracks__album__images": child(
        "tracks__album__images", "tracks", "track_id", "c.height, c.url, c.width"
    ),
    "audio_features": "SELECT * FROM audio_features",
}


def documents(path):
    with open(path, "rb") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def main():
    if len(sys.argv) != 4 or sys.argv[3] != "normalize":
        sys.exit(__doc__)
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    loaded = out / "dlt"
    schema = dlt.Schema("landing")
    schema.remove_type_detection("iso_timestamp")
    pipeline = dlt.pipeline(
        pipeline_name="landing",
        pipelines_dir=str(out / "state"),
        destination=dlt.destinations.filesystem(bucket_url=loaded.as_uri()),
        dataset_name="landing",
    )
    resources = [
        dlt.resource(documents(src / f"{name}.ndjson"), name=name, write_disposition="append")
        for name in SOURCES
    ]
    pipeline.run(resources, loader_file_format="parquet", schema=schema)

    con = duckdb.connect()
    for folder in (loaded / "landing").iterdir():
        if folder.is_dir() and not folder.name.startswith("_dlt"):
            con.execute(
                f"CREATE VIEW {folder.name} AS SELECT * FROM read_parquet('{folder}/*.parquet')"
            )
    for table, sql in TABLES.items():
        con.execute(
            f"COPY ({sql}) TO '{out / table}.parquet' (FORMAT parquet, COMPRESSION zstd)"
        )


if __name__ == "__main__":
    main()
