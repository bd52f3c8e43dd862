"""Read the gold tables the way analysts' engines would and print, as JSON,
what each saw: row counts from DuckDB, PyArrow and PySpark straight from the
folders, and from DuckDB and Spark through the DDL `soundlake ddl` printed,
plus both engines' answers to the analytical questions.

usage: read_gold.py <lake folder> <work folder> <table> [<table> ...]

The work folder holds duckdb.sql and spark.sql (the printed DDL) and
questions.json (a list of SQL queries over gold.<table>).
"""

import datetime
import decimal
import json
import os
import sys


def plain(value):
    """A value as JSON compares it: dates as ISO text, decimals as floats."""
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def statements(path):
    """The statements of a DDL file (each ends a line with ;), comments
    dropped."""
    with open(path) as f:
        text = "\n".join(l for l in f.read().splitlines() if not l.lstrip().startswith("--"))
    return [s.strip() for s in (text + "\n").split(";\n") if s.strip()]


def main():
    import duckdb
    import pyarrow.dataset as ds
    from pyspark.sql import SparkSession

    lake, work, tables = sys.argv[1], sys.argv[2], sys.argv[3:]
    with open(os.path.join(work, "questions.json")) as f:
        questions = json.load(f)
    counts = {k: {} for k in ["duckdb", "pyarrow", "pyspark", "duckdb_ddl", "spark_ddl"]}
    types = {}
    answers = {"duckdb": [], "spark": []}

    # Spark binds to loopback only.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("soundlake-gold-interop")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        # Its catalog's folder goes with the test's files, not the cwd.
        .config("spark.sql.warehouse.dir", os.path.join(work, "spark-warehouse"))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")

    for t in tables:
        folder = f"{lake}/gold/{t}"
        counts["duckdb"][t] = duckdb.sql(
            f"SELECT count(*) FROM read_parquet('{folder}/*.parquet')"
        ).fetchall()[0][0]
        arrow = ds.dataset(folder, format="parquet").to_table()
        counts["pyarrow"][t] = arrow.num_rows
        types[t] = {f.name: str(f.type) for f in arrow.schema}
        counts["pyspark"][t] = spark.read.parquet(f"file://{folder}").count()

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for s in statements(os.path.join(work, "duckdb.sql")):
        con.execute(s)
    for s in statements(os.path.join(work, "spark.sql")):
        spark.sql(s)
    for t in tables:
        counts["duckdb_ddl"][t] = con.execute(f"SELECT count(*) FROM gold.{t}").fetchall()[0][0]
        counts["spark_ddl"][t] = spark.sql(f"SELECT count(*) FROM gold.{t}").collect()[0][0]
    for q in questions:
        answers["duckdb"].append([[plain(v) for v in row] for row in con.execute(q).fetchall()])
        answers["spark"].append([[plain(v) for v in row] for row in spark.sql(q).collect()])
    spark.stop()
    print(json.dumps({"counts": counts, "pyarrow_types": types, "answers": answers}))


if __name__ == "__main__":
    main()
