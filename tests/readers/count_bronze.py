"""Read a bronze table the way an engine would, straight from its folders,
and print what it saw as JSON: DuckDB over a local lake, PyArrow over a
local lake or S3.

usage: count_bronze.py duckdb <table folder> <partition key>
       count_bronze.py pyarrow <table folder> <partition key>
       count_bronze.py pyarrow-s3 <endpoint> <bucket/prefix/table> <partition key>
(the S3 credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)
"""

import json
import os
import sys


def duckdb_counts(folder, key):
    import duckdb

    files = f"{folder}/*/*.parquet"
    row = duckdb.sql(
        f"""
        SELECT count(*), count(DISTINCT (id, ingested_at)),
               count(*) FILTER (WHERE {key} <> strftime(ingested_at AT TIME ZONE 'UTC', '%Y-%m-%d')),
               count(*) FILTER (WHERE json_valid(doc) AND doc->>'id' = id)
        FROM read_parquet('{files}', hive_partitioning = true)
        """
    ).fetchall()[0]
    return {
        "rows": row[0],
        "distinct_versions": row[1],
        "misplaced": row[2],
        "docs_matching_id": row[3],
    }


def pyarrow_counts(dataset):
    table = dataset.to_table()
    ids = table.column("id").to_pylist()
    stamps = table.column("ingested_at").cast("int64").to_pylist()
    return {
        "rows": table.num_rows,
        "distinct_versions": len(set(zip(ids, stamps))),
        "columns": table.column_names,
    }


def main():
    engine = sys.argv[1]
    if engine == "duckdb":
        out = duckdb_counts(sys.argv[2], sys.argv[3])
    elif engine == "pyarrow":
        import pyarrow.dataset as ds

        out = pyarrow_counts(ds.dataset(sys.argv[2], format="parquet", partitioning="hive"))
    elif engine == "pyarrow-s3":
        import pyarrow.dataset as ds
        from pyarrow import fs

        endpoint = sys.argv[2]
        s3 = fs.S3FileSystem(
            endpoint_override=endpoint.split("://", 1)[1],
            scheme="http",
            access_key=os.environ["AWS_ACCESS_KEY_ID"],
            secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
            region="us-east-1",
        )
        out = pyarrow_counts(
            ds.dataset(sys.argv[3], filesystem=s3, format="parquet", partitioning="hive")
        )
    else:
        raise SystemExit(f"unknown engine {engine}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
