"""The DuckDB baseline of the events race: the event files -> one row per
event_id (QUALIFY row_number()) -> Parquet partitioned by event_date, the
work soundlake's bronze.events + silver.events do.

usage: python duckdb_events.py <folder of .ndjson files> <output folder>
"""

import sys

import duckdb


def main():
    landing, out = sys.argv[1], sys.argv[2]
    con = duckdb.connect()
    con.execute(
        f"""
        COPY (
            SELECT *, CAST(event_ts AS DATE) AS event_date
            FROM read_json('{landing}/*.ndjson', format = 'newline_delimited',
                           timestampformat = '%Y-%m-%dT%H:%M:%S.%gZ')
            QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY event_ts) = 1
        ) TO '{out}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (event_date))
        """
    )


if __name__ == "__main__":
    main()
