#!/usr/bin/env bash
# Every benchmark in one command, from a fresh clone: installs DuckDB and
# PySpark into ./.venv and a Kafka broker's jars and Trino from Maven Central
# (Java 17, and Java 24 or newer for Trino, must be on the machine), builds
# soundlake optimized, then prints the flattening race (with gold on
# soundlake's engine and on Trino), the events race (files and Kafka against
# DuckDB), the incremental marts over a year of events, loading a MongoDB-compatible
# server (FerretDB), the crawl efficiency and the scheduler overhead tables
# (Markdown, as in benches/README.md).
#
#   bash benches/run.sh                          # 10k and 200k tracks, 3 runs each
#   SCALES=2000000 RUNS=1 bash benches/run.sh    # 2M tracks
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/venv.sh
bash tests/servers/install.sh

cargo build --release --locked --bin soundlake --example parse_limit
.venv/bin/python benches/flatten/bench.py --scales "${SCALES:-10000,200000}" --runs "${RUNS:-3}" --trino
.venv/bin/python benches/events/bench.py --events "${EVENTS:-1000000}" --runs "${RUNS:-3}"
.venv/bin/python benches/events/bench.py --events "${EVENTS:-1000000}" --days 365 --runs "${RUNS:-3}" \
  --systems soundlake-files --marts
.venv/bin/python benches/landing/bench.py --tracks "${LANDING_TRACKS:-20000}" --runs "${RUNS:-3}"
cargo bench --locked --bench crawl
cargo bench --locked --bench scheduler
