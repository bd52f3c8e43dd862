"""Read silver Delta tables the way engines would and print what each saw
as JSON.

usage: read_silver.py <lake folder> <table> [<table> ...]

For each table: the row count and column types DuckDB (over the files of
the current version) and delta-rs report, and DuckDB's answer to a join of
tracks with their artists.
"""

import json
import sys


def main():
    import duckdb
    from deltalake import DeltaTable

    from delta_files import read_parquet

    lake = sys.argv[1]
    out = {}
    for table in sys.argv[2:]:
        folder = f"{lake}/silver/{table}"
        rel = duckdb.sql(f"SELECT * FROM {read_parquet(folder)}")
        duck_types = {name: str(kind) for name, kind in zip(rel.columns, rel.types)}
        rows = duckdb.sql(f"SELECT count(*) FROM {read_parquet(folder)}").fetchall()[0][0]
        arrow = DeltaTable(folder).to_pyarrow_table()
        out[table] = {
            "duckdb_rows": rows,
            "duckdb_types": duck_types,
            "pyarrow_rows": arrow.num_rows,
            "pyarrow_types": {f.name: str(f.type) for f in arrow.schema},
        }
    joined = duckdb.sql(
        f"""
        SELECT t.id, t.album__release_date::VARCHAR, len(t.available_markets), count(a.idx)
        FROM {read_parquet(f"{lake}/silver/tracks")} t
        JOIN {read_parquet(f"{lake}/silver/tracks__artists")} a ON a.track_id = t.id
        GROUP BY ALL ORDER BY t.id
        """
    ).fetchall()
    out["tracks_with_artists"] = [list(r) for r in joined]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
