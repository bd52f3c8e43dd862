"""Read the gold Delta tables the way analysts' engines would and print, as
JSON, what each saw: row counts from delta-rs, from DuckDB over the files of
the table's current version (as delta-rs lists them), from PySpark with
delta-spark by path and through the DDL `soundlake ddl --engine spark`
printed, the column comments Spark describes, plus DuckDB's and Spark's
answers to the analytical questions.

usage: read_gold.py <lake folder> <work folder> <table> [<table> ...]

The work folder holds spark.sql (the printed DDL) and questions.json (a list
of SQL queries over gold.<table>).
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


def spark_session(work):
    """Spark with Delta Lake; delta-spark's jars come from Maven Central
    through Ivy, cached between runs."""
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    # Spark binds to loopback only.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    ivy = os.path.join(os.path.expanduser("~"), ".cache", "soundlake", "ivy")
    builder = (
        SparkSession.builder.master("local[2]")
        .appName("soundlake-gold-interop")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.jars.ivy", ivy)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config(
            "spark.sql.catalog.spark_catalog",
            "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        )
        # Its catalog's folder goes with the test's files, not the cwd.
        .config("spark.sql.warehouse.dir", os.path.join(work, "spark-warehouse"))
    )
    spark = configure_spark_with_delta_pip(builder).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def main():
    import duckdb
    from deltalake import DeltaTable

    from delta_files import read_parquet

    lake, work, tables = sys.argv[1], sys.argv[2], sys.argv[3:]
    with open(os.path.join(work, "questions.json")) as f:
        questions = json.load(f)
    counts = {k: {} for k in ["delta_rs", "duckdb", "pyspark", "spark_ddl"]}
    types = {}
    answers = {"duckdb": [], "spark": []}
    spark = spark_session(work)

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE SCHEMA gold")
    for t in tables:
        folder = f"{lake}/gold/{t}"
        delta = DeltaTable(folder)
        arrow = delta.to_pyarrow_table()
        counts["delta_rs"][t] = arrow.num_rows
        types[t] = {f.name: str(f.type) for f in arrow.schema}
        con.execute(f"CREATE VIEW gold.{t} AS SELECT * FROM {read_parquet(folder)}")
        counts["duckdb"][t] = con.execute(f"SELECT count(*) FROM gold.{t}").fetchall()[0][0]
        counts["pyspark"][t] = spark.read.format("delta").load(f"file://{folder}").count()

    for s in statements(os.path.join(work, "spark.sql")):
        spark.sql(s)
    comments = {}
    for t in tables:
        counts["spark_ddl"][t] = spark.sql(f"SELECT count(*) FROM gold.{t}").collect()[0][0]
        comments[t] = {r.col_name: r.comment for r in spark.sql(f"DESCRIBE gold.{t}").collect()}
    for q in questions:
        answers["duckdb"].append([[plain(v) for v in row] for row in con.execute(q).fetchall()])
        answers["spark"].append([[plain(v) for v in row] for row in spark.sql(q).collect()])
    spark.stop()
    print(
        json.dumps(
            {
                "counts": counts,
                "pyarrow_types": types,
                "spark_comments": comments,
                "answers": answers,
            }
        )
    )


if __name__ == "__main__":
    main()
