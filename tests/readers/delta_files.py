"""The files of a Delta table's current version, for readers that take
Parquet files (DuckDB here): a table folder also holds files of older
versions and of writes that never committed, which only the log tells
apart."""


def current_files(folder):
    """The Parquet files of the table's current version, as delta-rs lists them."""
    from deltalake import DeltaTable

    return DeltaTable(folder).file_uris()


def read_parquet(folder, hive=False):
    """A DuckDB `read_parquet(...)` over the table's current version."""
    return (
        f"read_parquet({current_files(folder)!r}, "
        f"hive_partitioning = {str(hive).lower()}, union_by_name = true)"
    )
