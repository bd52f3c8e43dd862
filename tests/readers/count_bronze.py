"""Read a bronze Delta table the way engines would and print what each saw
as JSON: DuckDB over the files of the table's current version (as delta-rs
lists them), delta-rs itself over a local lake or S3.

usage: count_bronze.py duckdb <table folder> <partition key>
       count_bronze.py history <table folder>   (delta-rs's history of the table)
       count_bronze.py delta-rs <table folder> <partition key>
       count_bronze.py delta-rs-s3 <endpoint> <bucket/prefix/table> <partition key>
(the S3 credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)
"""

import json
import os
import sys


def duckdb_counts(folder, key):
    import duckdb

    from delta_files import read_parquet

    row = duckdb.sql(
        f"""
        SELECT count(*), count(DISTINCT (id, ingested_at)),
               count(*) FILTER (WHERE {key} <> strftime(ingested_at AT TIME ZONE 'UTC', '%Y-%m-%d')),
               count(*) FILTER (WHERE json_valid(doc) AND doc->>'id' = id)
        FROM {read_parquet(folder, hive=True)}
        """
    ).fetchall()[0]
    return {
        "rows": row[0],
        "distinct_versions": row[1],
        "misplaced": row[2],
        "docs_matching_id": row[3],
    }


def delta_counts(table):
    table = table.to_pyarrow_table()
    ids = table.column("id").to_pylist()
    stamps = table.column("ingested_at").cast("int64").to_pylist()
    return {
        "rows": table.num_rows,
        "distinct_versions": len(set(zip(ids, stamps))),
        "columns": table.column_names,
    }


def main():
    from deltalake import DeltaTable

    engine = sys.argv[1]
    if engine == "duckdb":
        out = duckdb_counts(sys.argv[2], sys.argv[3])
    elif engine == "history":
        out = [
            {
                "version": c["version"],
                "operation": c["operation"],
                "run_id": c.get("soundlake", {}).get("runId"),
                "timestamp": c["timestamp"],
            }
            for c in DeltaTable(sys.argv[2]).history()
        ]
    elif engine == "delta-rs":
        out = delta_counts(DeltaTable(sys.argv[2]))
    elif engine == "delta-rs-s3":
        options = {
            "AWS_ENDPOINT_URL": sys.argv[2],
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
            "AWS_REGION": "us-east-1",
        }
        out = delta_counts(DeltaTable(f"s3://{sys.argv[3]}", storage_options=options))
    else:
        raise SystemExit(f"unknown engine {engine}")
    print(json.dumps(out), flush=True)
    # delta-rs's S3 client can abort the interpreter while it shuts down
    # ("terminate called without an active exception"); the answer is out.
    os._exit(0)


if __name__ == "__main__":
    main()
