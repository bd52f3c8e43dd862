"""The gold models' own SQL (gold/*.sql) run by DuckDB over the same bronze
and silver Delta tables soundlake's gold reads: the baseline for "gold no
slower than DuckDB running the same model SQL".

Each model becomes a DuckDB table, in dependency order, and is written to
zstd Parquet. The two functions soundlake's engine adds are DuckDB macros of
the same shape: surrogate_key(parts...) hashes its parts to a BIGINT
(DuckDB's hash, not soundlake's XXH3, so keys differ but joins on them hold)
and json_bigint(doc, 'a.b') reads an integer at a dotted path. Models with a
nearest-neighbour step ([neighbours] in their .toml) are left out: SQL alone
cannot run them. DuckDB does less than soundlake's gold: no data tests, no
contract casts, no Delta commits.

usage: duckdb_gold.py <lake folder> <gold definitions folder> <out folder> <model>...
Prints {"models": {name: rows}} as JSON.
"""

import json
import re
import sys
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "readers"))
from delta_files import current_files  # noqa: E402

MACROS = """
CREATE MACRO surrogate_key(a) AS (hash(a) >> 1)::BIGINT,
    (a, b) AS (hash(a, b) >> 1)::BIGINT,
    (a, b, c) AS (hash(a, b, c) >> 1)::BIGINT;
CREATE MACRO json_bigint(doc, path) AS TRY_CAST(json_extract_string(doc, '$.' || path) AS BIGINT);
"""


def create(con, name, sql):
    """CREATE TABLE gold.<name> AS <sql>. A bronze or silver table with no
    data yet (no album needs a second page of tracks in a generated catalog)
    reads as an empty table with the text columns the model asks of it, as
    soundlake's engine reads it."""
    while True:
        try:
            con.execute(f"CREATE TABLE gold.{name} AS {sql}")
            return
        except duckdb.CatalogException as e:
            absent = re.search(r"Table with name (\w+) does not exist", str(e))
            layer = absent and re.search(rf"(bronze|silver)\.{absent[1]}\b", sql)
            if not layer:
                raise
            con.execute(f"CREATE TABLE {layer[1]}.{absent[1]} (_absent VARCHAR)")
        except duckdb.BinderException as e:
            column = re.search(
                r'Referenced column "(\w+)" not found|does not have a column named "(\w+)"', str(e)
            )
            stand_ins = con.execute(
                "SELECT schema_name || '.' || table_name FROM duckdb_columns() "
                "WHERE column_name = '_absent'"
            ).fetchall()
            if not column or not stand_ins:
                raise
            for (table,) in stand_ins:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {column[1] or column[2]} VARCHAR")


def main():
    lake, models_dir, out = (Path(a) for a in sys.argv[1:4])
    chosen = set(sys.argv[4:])
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(MACROS)
    for layer in ["bronze", "silver"]:
        con.execute(f"CREATE SCHEMA {layer}")
        for table in sorted(p for p in (lake / layer).iterdir() if (p / "_delta_log").is_dir()):
            files = current_files(str(table))
            if files:
                con.execute(
                    f"CREATE VIEW {layer}.{table.name} AS SELECT * FROM read_parquet({files!r}, "
                    "hive_partitioning = true, union_by_name = true)"
                )
    con.execute("CREATE SCHEMA gold")
    pending = {
        p.stem: p.read_text()
        for p in sorted(models_dir.glob("*.sql"))
        if p.stem in chosen and "[neighbours]" not in p.with_suffix(".toml").read_text()
    }
    rows = {}
    # A model reading another waits for it: retry until a pass makes none.
    while pending:
        failed = {}
        for name, sql in pending.items():
            try:
                create(con, name, sql)
            except duckdb.CatalogException as e:
                failed[name] = (sql, e)
                continue
            target = out / f"{name}.parquet"
            con.execute(f"COPY gold.{name} TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
            rows[name] = con.execute(f"SELECT count(*) FROM gold.{name}").fetchone()[0]
        if len(failed) == len(pending):
            problems = "; ".join(f"{n}: {e}" for n, (_, e) in failed.items())
            sys.exit(f"models DuckDB cannot run: {problems}")
        pending = {n: sql for n, (sql, _) in failed.items()}
    json.dump({"models": rows}, sys.stdout)


if __name__ == "__main__":
    main()
